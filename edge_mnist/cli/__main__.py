"""`python -m edge_mnist.cli`: the console script, for tests and environments without the entry point."""
from edge_mnist.cli import main

if __name__ == "__main__":
    main()
