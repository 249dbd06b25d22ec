"""An artifact folder: the name of every file in it (layout), its typed records and verified reads."""
