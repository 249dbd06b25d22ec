// edge-mnist's web page runtime: the model's own description (ONNX metadata_props), `edge-mnist predict`'s
// preprocessing (edge_mnist/predict/preprocess.py, step for step, with its float32 arithmetic where it sets a
// threshold or a rounding), int8 quantization and onnxruntime-web (WASM, one thread, files beside this one).
// Exposes window.edgeMnist = { ready: Promise, predict(ImageData) -> Promise<{index, label, probs, top, ...}> }.
"use strict";
(function () {
  const MODEL = document.currentScript.dataset.model, PREPROCESS = document.currentScript.dataset.preprocess;
  const MAX_PIXELS = 50000000, MAX_SIDE = 2048, BLANK_RANGE = 0.05, WORK_SIDE = 768, SURFACE_SIDE = 64;
  const SURFACE_ROUNDS = [3, 3, 6], STATS_SAMPLE = 50000, NOISE_FLOOR = 4, MIN_CONTRAST_TO_NOISE = 8;
  const INK_PERCENTILE = 90, PART_FRACTION = 0.02, NEAR_FRACTION = 0.3, MIN_OBJECT_PIXELS = 4;
  const MIN_OBJECT_FRACTION = 1e-4;
  const BLANK = "no digit or object found (blank image)";
  const f32 = Math.fround;

  /** Python's and numpy's round(): halves to the even neighbour. */
  function roundEven(x) {
    const r = Math.round(x);
    return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
  }

  /** An image: height, width, channels (1 grey, 3 RGB interleaved) and float32 pixels in rows. */
  function image(h, w, d, c) { return { h: h, w: w, c: c || 1, d: d || new Float32Array(h * w * (c || 1)) }; }

  // ---- the model's description: metadata_props of the ONNX ModelProto (field 14), read from its bytes ----

  /** A protobuf varint at `pos`: [value, next position]. */
  function varint(bytes, pos) {
    let value = 0, scale = 1, byte;
    do { byte = bytes[pos++]; value += (byte & 0x7f) * scale; scale *= 128; } while (byte & 0x80);
    return [value, pos];
  }

  /** The fields of one protobuf message as [number, wire type, value or [start, end]] (groups unsupported). */
  function fields(bytes, start, end) {
    const out = [];
    let pos = start;
    while (pos < end) {
      let key, value;
      [key, pos] = varint(bytes, pos);
      const number = Math.floor(key / 8), wire = key & 7;
      if (wire === 0) { [value, pos] = varint(bytes, pos); }
      else if (wire === 1) { value = null; pos += 8; }
      else if (wire === 5) { value = null; pos += 4; }
      else if (wire === 2) { let len; [len, pos] = varint(bytes, pos); value = [pos, pos + len]; pos += len; }
      else { throw new Error(MODEL + ": not an ONNX model (protobuf wire type " + wire + ")"); }
      out.push([number, wire, value]);
    }
    return out;
  }

  /** metadata_props of an ONNX model file as an object (keys and values are UTF-8 strings). */
  function metadataProps(bytes) {
    const text = new TextDecoder("utf-8", { fatal: true }), props = {};
    for (const [number, wire, span] of fields(bytes, 0, bytes.length)) {
      if (number !== 14 || wire !== 2) continue;
      let key = "", value = "";
      for (const [n, w, s] of fields(bytes, span[0], span[1])) {
        if (w !== 2) continue;
        if (n === 1) key = text.decode(bytes.subarray(s[0], s[1]));
        if (n === 2) value = text.decode(bytes.subarray(s[0], s[1]));
      }
      props[key] = value;
    }
    return props;
  }

  /** What the page needs from the metadata edge-mnist writes: the task (labels, shape, fit box) and the
   * int8 input and output quantization. A file without it is an error naming the file. */
  function describe(props) {
    const missing = ["task", "input_scale", "input_zero_point", "output_scale", "output_zero_point"]
      .filter(k => !(k in props));
    if (missing.length) throw new Error(MODEL + ": metadata_props lacks " + missing.join(", "));
    const task = JSON.parse(props.task);
    return { task: task, labels: task.class_names, inScale: Number(props.input_scale),
      inZero: Number(props.input_zero_point), outScale: Number(props.output_scale),
      outZero: Number(props.output_zero_point) };
  }

  // ---- statistics, as numpy computes them ----

  /** Copy an h x w block from (top, left) of `src` to (atTop, atLeft) of `dst`. */
  function blit(src, top, left, dst, atTop, atLeft, h, w) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) dst.d[(atTop + y) * dst.w + atLeft + x] = src.d[(top + y) * src.w + left + x];
    }
  }

  /** An evenly spaced sample of at most STATS_SAMPLE values (preprocess._thin). */
  function thin(values) {
    const step = Math.max(1, Math.floor(values.length / STATS_SAMPLE));
    if (step === 1) return values;
    const out = new Float64Array(Math.ceil(values.length / step));
    for (let i = 0, j = 0; i < values.length; i += step) out[j++] = values[i];
    return out;
  }

  /** numpy.percentile (linear) of values. */
  function percentile(values, q) {
    const sorted = Float64Array.from(values).sort(), pos = q / 100 * (sorted.length - 1);
    const lo = Math.floor(pos), hi = Math.min(lo + 1, sorted.length - 1), t = pos - lo;
    const a = sorted[lo], b = sorted[hi];
    return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
  }

  /** numpy.median of values (0 for none, as preprocess._median). */
  function median(values) {
    if (!values.length) return 0;
    const sorted = Float64Array.from(values).sort(), mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  /** The values at which `mask` is true, in order. */
  function where(d, mask, want) {
    const out = [];
    for (let i = 0; i < d.length; i++) if (!!mask[i] === want) out.push(d[i]);
    return Float64Array.from(out);
  }

  /** Otsu's threshold of a 256-bin histogram, numpy.histogram's binning (float32 edges for float32 data). */
  function otsu(values, single) {
    let low = Infinity, high = -Infinity;
    for (const v of values) { if (v < low) low = v; if (v > high) high = v; }
    if (high - low < 1e-6) return high;
    const round = single ? f32 : (x => x), edges = new Float64Array(257), step = (high - low) / 256;
    for (let i = 0; i < 256; i++) edges[i] = round(low + i * step);
    edges[256] = round(high);
    const counts = new Float64Array(256), denom = high - low;
    for (const v of values) {
      let k = Math.trunc((single ? f32(v - low) : v - low) / denom * 256);
      if (k === 256) k--;
      if (v < edges[k]) k--;
      if (v >= edges[k + 1] && k !== 255) k++;
      counts[k]++;
    }
    let total = 0, totalMass = 0;
    const centres = new Float64Array(256);
    for (let i = 0; i < 256; i++) {
      centres[i] = single ? f32(f32(edges[i] + edges[i + 1]) / 2) : (edges[i] + edges[i + 1]) / 2;
      total += counts[i]; totalMass += counts[i] * centres[i];
    }
    const spread = new Float64Array(255);
    let below = 0, mass = 0, best = 0;
    for (let i = 0; i < 255; i++) {
      below += counts[i]; mass += counts[i] * centres[i];
      const above = total - below, s = below * above * (mass / below - (totalMass - mass) / above) ** 2;
      spread[i] = Number.isFinite(s) ? s : 0;
      best = Math.max(best, spread[i]);
    }
    let first = -1, last = -1;
    for (let i = 0; i < 255; i++) if (spread[i] >= best * (1 - 1e-9)) { if (first < 0) first = i; last = i; }
    return edges[((first + last) >> 1) + 1];
  }

  // ---- Pillow's Lanczos resize of a 32-bit float image ----

  /** Lanczos-3 (Pillow's lanczos_filter). */
  function lanczos(x) {
    const sinc = v => (v === 0 ? 1 : Math.sin(v * Math.PI) / (v * Math.PI));
    return (x >= -3 && x < 3) ? sinc(x) * sinc(x / 3) : 0;
  }

  /** Pillow's precompute_coeffs for `filter` of half-width `width` (Lanczos-3 unless given): per output pixel,
   * the first input pixel and the normalized weights. */
  function coefficients(inSize, outSize, filter = lanczos, width = 3) {
    const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = width * filterScale, rows = [];
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale, ss = 1 / filterScale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      const k = new Float64Array(Math.max(xmax, 0));
      let ww = 0;
      for (let x = 0; x < xmax; x++) { k[x] = filter((x + xmin - center + 0.5) * ss); ww += k[x]; }
      if (ww !== 0) for (let x = 0; x < xmax; x++) k[x] /= ww;
      rows.push([xmin, k]);
    }
    return rows;
  }

  /** Image.fromarray(img, "F").resize((w, h), LANCZOS): horizontal pass, then vertical, float32 between. */
  function resize(img, h, w) {
    let src = img;
    if (w !== src.w) {
      const out = image(src.h, w), rows = coefficients(src.w, w);
      for (let y = 0; y < src.h; y++) {
        for (let x = 0; x < w; x++) {
          const [xmin, k] = rows[x];
          let s = 0;
          for (let i = 0; i < k.length; i++) s += src.d[y * src.w + xmin + i] * k[i];
          out.d[y * w + x] = s;
        }
      }
      src = out;
    }
    if (h !== src.h) {
      const out = image(h, src.w), rows = coefficients(src.h, h);
      for (let y = 0; y < h; y++) {
        const [ymin, k] = rows[y];
        for (let x = 0; x < src.w; x++) {
          let s = 0;
          for (let i = 0; i < k.length; i++) s += src.d[(ymin + i) * src.w + x] * k[i];
          out.d[y * src.w + x] = s;
        }
      }
      src = out;
    }
    return src === img ? image(img.h, img.w, img.d.slice()) : src;
  }

  /** The image reduced so its longer side is at most `side` (never enlarged). */
  function shrink(img, side) {
    const scale = side / Math.max(img.h, img.w);
    if (scale >= 1) return img;
    return resize(img, Math.max(1, roundEven(img.h * scale)), Math.max(1, roundEven(img.w * scale)));
  }

  // ---- the steps of preprocess.py ----

  /** Pixel i of RGBA bytes `p` as Pillow makes it opaque (transparency composited on white paper): [r, g, b]. */
  function onWhite(p, i) {
    const a = p[4 * i + 3];
    return [p[4 * i], p[4 * i + 1], p[4 * i + 2]].map(c => {
      if (a === 255) return c;
      const t = c * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
      return (((t >> 8) + t) >> 8) >> 7;
    });
  }

  /** Pillow's convert("L") of an [r, g, b] pixel (ITU-R 601 luma). */
  function luma(rgb) { return (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16; }

  /** ImageData's pixel count, refused over MAX_PIXELS. */
  function pixelCount(data) {
    if (data.width * data.height > MAX_PIXELS) throw new Error("more than " + MAX_PIXELS + " pixels");
    return data.width * data.height;
  }

  /** ImageData -> float32 grey in [0, 1] as Pillow converts it (transparency on white paper, then "L"). */
  function grayscale(data) {
    const img = image(data.height, data.width), p = data.data;
    for (let i = 0, n = pixelCount(data); i < n; i++) img.d[i] = f32(luma(onWhite(p, i)) / 255);
    return img;
  }

  // ---- a task of the user's own data: the whole photo resized (preprocess.whole_frame) ----

  /** Pillow's bilinear_filter (a triangle of half-width 1). */
  function triangle(x) {
    const a = Math.abs(x);
    return a < 1 ? 1 - a : 0;
  }

  /** Pillow's 8-bit resample along one axis (ImagingResampleHorizontal/Vertical_8bpc): the weights as integers
   * with 22 fraction bits (normalize_coeffs_8bpc), sums rounded by adding half, clipped to 0..255. */
  function resample8(src, h, w, c, size, vertical) {
    const rows = coefficients(vertical ? h : w, size, triangle, 1).map(([first, k]) =>
      [first, Array.from(k, v => Math.trunc(v < 0 ? v * 4194304 - 0.5 : v * 4194304 + 0.5))]);
    const oh = vertical ? size : h, ow = vertical ? w : size, out = new Uint8Array(oh * ow * c);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const [first, k] = rows[vertical ? y : x];
        for (let ch = 0; ch < c; ch++) {
          let sum = 2097152;
          for (let i = 0; i < k.length; i++) {
            sum += src[((vertical ? first + i : y) * w + (vertical ? x : first + i)) * c + ch] * k[i];
          }
          out[(y * ow + x) * c + ch] = Math.min(255, Math.max(0, Math.floor(sum / 4194304)));
        }
      }
    }
    return out;
  }

  /** ImageData -> the task's frame, the whole image resized bilinearly in 8 bits (horizontal pass, then
   * vertical, as Pillow's resize), RGB for a three-channel task and luma for one (preprocess.whole_frame). */
  function wholeFrame(data, task) {
    const [height, width, channels] = task.input_shape, n = pixelCount(data);
    let px = new Uint8Array(n * channels), low = 255, high = 0;
    for (let i = 0; i < n; i++) {
      const rgb = onWhite(data.data, i);
      if (channels === 3) px.set(rgb, 3 * i); else px[i] = luma(rgb);
    }
    for (const v of px) { if (v < low) low = v; if (v > high) high = v; }
    if ((high - low) / 255 < BLANK_RANGE) throw new Error(BLANK);
    if (data.width !== width) px = resample8(px, data.height, data.width, channels, width, false);
    if (data.height !== height) px = resample8(px, data.height, width, channels, height, true);
    return image(height, width, Float32Array.from(px, v => f32(v / 255)), channels);
  }

  /** True for dark ink on light paper (preprocess._light_background). */
  function lightBackground(img, task) {
    const sample = thin(img.d), low = percentile(sample, 0.1), high = percentile(sample, 99.9);
    const fillsFrame = task.fit_box >= Math.min(task.input_shape[0], task.input_shape[1]);
    let background;
    if (fillsFrame) {
      const border = [];
      for (let x = 0; x < img.w; x++) border.push(img.d[x]);
      for (let x = 0; x < img.w; x++) border.push(img.d[(img.h - 1) * img.w + x]);
      for (let y = 0; y < img.h; y++) border.push(img.d[y * img.w]);
      for (let y = 0; y < img.h; y++) border.push(img.d[y * img.w + img.w - 1]);
      background = median(border);
    } else {
      background = median(sample);
    }
    return background - low > high - background;
  }

  /** The pixel noise's deviation from horizontal neighbours' differences (preprocess._noise). */
  function noise(flat) {
    if (flat.w < 2) return 0;
    const diffs = new Float32Array(flat.h * (flat.w - 1));
    for (let y = 0, j = 0; y < flat.h; y++) {
      const row = y * flat.w;
      for (let x = 0; x < flat.w - 1; x++) diffs[j++] = Math.abs(f32(flat.d[row + x + 1] - flat.d[row + x]));
    }
    return percentile(thin(diffs), 25) / 0.3186 / Math.sqrt(2);
  }

  /** numpy.linspace(-1, 1, n) in float32. */
  function linspace(n) {
    const out = new Float32Array(n), step = n > 1 ? 2 / (n - 1) : 0;
    for (let i = 0; i < n; i++) out[i] = i === n - 1 && n > 1 ? 1 : -1 + i * step;
    return out;
  }

  /** 1, x, y, x², xy, y² at pixel (i, j) of an h x w image, float32 (preprocess._surface_terms). */
  function terms(ys, xs, i, j) {
    const x = xs[j], y = ys[i];
    return [1, x, y, f32(x * x), f32(x * y), f32(y * y)];
  }

  /** Solve the square system a x = b (Gaussian elimination with partial pivoting). */
  function solve(a, b) {
    const n = b.length;
    for (let c = 0; c < n; c++) {
      let p = c;
      for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
      [a[c], a[p]] = [a[p], a[c]]; [b[c], b[p]] = [b[p], b[c]];
      for (let r = c + 1; r < n; r++) {
        const f = a[c][c] === 0 ? 0 : a[r][c] / a[c][c];
        for (let k = c; k < n; k++) a[r][k] -= f * a[c][k];
        b[r] -= f * b[c];
      }
    }
    const x = new Array(n).fill(0);
    for (let r = n - 1; r >= 0; r--) {
      let s = b[r];
      for (let k = r + 1; k < n; k++) s -= a[r][k] * x[k];
      x[r] = a[r][r] === 0 ? 0 : s / a[r][r];
    }
    return x;
  }

  /** The paper's brightness as a quadratic surface fitted to the paper pixels (preprocess._background). */
  function background(ink) {
    const small = shrink(ink, SURFACE_SIDE), ys = linspace(small.h), xs = linspace(small.w), n = small.d.length;
    const design = [];
    for (let i = 0; i < small.h; i++) for (let j = 0; j < small.w; j++) design.push(terms(ys, xs, i, j));
    let paper = new Uint8Array(n).fill(1), coef = [0, 0, 0, 0, 0, 0], used = n;
    for (const count of SURFACE_ROUNDS) {
      const a = Array.from({ length: count }, () => new Array(count).fill(0)), b = new Array(count).fill(0);
      for (let p = 0; p < n; p++) {
        if (!paper[p]) continue;
        for (let r = 0; r < count; r++) {
          b[r] += design[p][r] * small.d[p];
          for (let c = 0; c < count; c++) a[r][c] += design[p][r] * design[p][c];
        }
      }
      coef = solve(a, b).concat(new Array(6 - count).fill(0));
      const residual = new Float64Array(n);
      for (let p = 0; p < n; p++) {
        let fit = 0;
        for (let k = 0; k < 6; k++) fit += design[p][k] * coef[k];
        residual[p] = small.d[p] - fit;
      }
      const threshold = otsu(residual, false);
      used = 0;
      for (let p = 0; p < n; p++) { paper[p] = residual[p] <= threshold ? 1 : 0; used += paper[p]; }
      if (used < 24) break;
    }
    const c32 = coef.map(f32), bigY = linspace(ink.h), bigX = linspace(ink.w), out = image(ink.h, ink.w);
    for (let i = 0; i < ink.h; i++) {
      for (let j = 0; j < ink.w; j++) {
        const t = terms(bigY, bigX, i, j);
        let s = 0;
        for (let k = 0; k < 6; k++) s = f32(s + f32(c32[k] * t[k]));
        out.d[i * ink.w + j] = s;
      }
    }
    return out;
  }

  /** Otsu's threshold, or above the paper's noise when Otsu splits the noise (preprocess._ink_threshold). */
  function inkThreshold(flat, noiseLevel) {
    const threshold = otsu(flat.d, true);
    const floor = median(thin(flat.d.filter(v => v <= threshold))) + NOISE_FLOOR * noiseLevel;
    if (threshold >= floor) return threshold;
    const above = flat.d.filter(v => v > floor);
    return above.length ? otsu(above, true) : floor;
  }

  /** 8-connected components: [label per pixel (-1 off the mask), count], labels in raster order of first pixel. */
  function components(mask, h, w) {
    const parent = new Int32Array(h * w).fill(-1);
    const find = i => { while (parent[i] !== i) { parent[i] = parent[parent[i]]; i = parent[i]; } return i; };
    const join = (a, b) => { a = find(a); b = find(b); if (a !== b) parent[Math.max(a, b)] = Math.min(a, b); };
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (!mask[i]) continue;
        parent[i] = i;
        if (x > 0 && mask[i - 1]) join(i, i - 1);
        for (let dx = -1; dx <= 1 && y > 0; dx++) {
          if (x + dx >= 0 && x + dx < w && mask[i - w + dx]) join(i, i - w + dx);
        }
      }
    }
    const labels = new Int32Array(h * w).fill(-1), byRoot = new Map();
    for (let i = 0; i < h * w; i++) {
      if (!mask[i]) continue;
      const root = find(i);
      if (!byRoot.has(root)) byRoot.set(root, byRoot.size);
      labels[i] = byRoot.get(root);
    }
    return [labels, byRoot.size];
  }

  /** The object's pixels: the largest inner component and its nearby strokes (preprocess._object_mask). */
  function objectMask(mask, h, w) {
    const [labels, count] = components(mask, h, w);
    if (count === 0) return null;
    const area = new Float64Array(count), top = new Int32Array(count).fill(h), left = new Int32Array(count).fill(w);
    const bottom = new Int32Array(count).fill(-1), right = new Int32Array(count).fill(-1);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const c = labels[y * w + x];
        if (c < 0) continue;
        area[c]++; top[c] = Math.min(top[c], y); left[c] = Math.min(left[c], x);
        bottom[c] = Math.max(bottom[c], y); right[c] = Math.max(right[c], x);
      }
    }
    const border = c => top[c] === 0 || left[c] === 0 || bottom[c] === h - 1 || right[c] === w - 1;
    const minArea = Math.max(MIN_OBJECT_PIXELS, MIN_OBJECT_FRACTION * h * w);
    let main = -1;
    for (let c = 0; c < count; c++) {
      if (!border(c) && area[c] >= minArea && (main < 0 || area[c] > area[main])) main = c;
    }
    if (main < 0) { main = 0; for (let c = 1; c < count; c++) if (area[c] > area[main]) main = c; }
    const size = Math.max(bottom[main] - top[main], right[main] - left[main]) + 1, keep = new Uint8Array(count);
    for (let c = 0; c < count; c++) {
      const gap = Math.max(top[c] - bottom[main], top[main] - bottom[c], left[c] - right[main], left[main] - right[c]);
      const large = area[c] >= PART_FRACTION * area[main], near = gap <= NEAR_FRACTION * size;
      keep[c] = large && near && (!border(c) || border(main)) ? 1 : 0;
    }
    keep[main] = 1;
    return labels.map(c => (c >= 0 && keep[c] ? 1 : 0));
  }

  /** The mask grown by one pixel in all eight directions. */
  function dilate(mask, h, w) {
    const out = new Uint8Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let on = 0;
        for (let dy = -1; dy <= 1 && !on; dy++) {
          for (let dx = -1; dx <= 1 && !on; dx++) {
            const yy = y + dy, xx = x + dx;
            if (yy >= 0 && yy < h && xx >= 0 && xx < w && mask[yy * w + xx]) on = 1;
          }
        }
        out[y * w + x] = on;
      }
    }
    return out;
  }

  /** The object cut out of a photo as ink intensity, white on black (preprocess._object_crop). */
  function objectCrop(img, task) {
    const work = shrink(img, WORK_SIDE), light = lightBackground(work, task), ink = image(work.h, work.w);
    for (let i = 0; i < ink.d.length; i++) ink.d[i] = light ? f32(1 - work.d[i]) : work.d[i];
    const bg = background(ink), flat = image(ink.h, ink.w);
    for (let i = 0; i < flat.d.length; i++) flat.d[i] = f32(ink.d[i] - bg.d[i]);
    const noiseLevel = noise(flat), threshold = inkThreshold(flat, noiseLevel);
    const mask = flat.d.map(v => (v > threshold ? 1 : 0)), keep = objectMask(mask, flat.h, flat.w);
    const paper = median(thin(where(flat.d, mask, false)));
    const level = keep ? percentile(thin(where(flat.d, keep, true)), INK_PERCENTILE) : paper;
    if (level - paper < Math.max(BLANK_RANGE, MIN_CONTRAST_TO_NOISE * noiseLevel)) throw new Error(BLANK);
    const p32 = f32(paper), span = f32(level - paper), obj = image(flat.h, flat.w);
    for (let i = 0; i < obj.d.length; i++) obj.d[i] = f32(f32(flat.d[i] - p32) / span);
    const strays = dilate(mask.map((m, i) => (m && !keep[i] ? 1 : 0)), flat.h, flat.w);
    const near = dilate(keep, flat.h, flat.w);
    let top = flat.h, left = flat.w, bottom = -1, right = -1;
    for (let y = 0; y < flat.h; y++) {
      for (let x = 0; x < flat.w; x++) {
        const i = y * flat.w + x;
        if (strays[i] && !near[i]) obj.d[i] = 0;
        if (!keep[i]) continue;
        top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
      }
    }
    const crop = image(bottom - top + 1, right - left + 1);
    blit(obj, top, left, crop, 0, 0, crop.h, crop.w);
    return crop;
  }

  /** Top-left offset putting the centre of mass (or the box centre) at the frame centre (preprocess._placement). */
  function placement(fitted, height, width, centreOfMass) {
    let cy = (fitted.h - 1) / 2, cx = (fitted.w - 1) / 2;
    if (centreOfMass) {
      let total = 0, sy = 0, sx = 0;
      for (let y = 0; y < fitted.h; y++) {
        for (let x = 0; x < fitted.w; x++) {
          const v = fitted.d[y * fitted.w + x];
          total += v; sy += y * v; sx += x * v;
        }
      }
      total = f32(total); cy = sy / total; cx = sx / total;
    }
    const clip = (v, hi) => Math.min(Math.max(v, 0), hi);
    return [clip(roundEven((height - 1) / 2 - cy), height - fitted.h),
      clip(roundEven((width - 1) / 2 - cx), width - fitted.w)];
  }

  /** The crop fitted into the task's box and frame, on 256 grey levels (preprocess._fit). */
  function fit(crop, task) {
    const [height, width] = task.input_shape, scale = task.fit_box / Math.max(crop.h, crop.w);
    const fitted = resize(crop, Math.max(1, roundEven(crop.h * scale)), Math.max(1, roundEven(crop.w * scale)));
    let peak = 0;
    for (let i = 0; i < fitted.d.length; i++) {
      fitted.d[i] = Math.min(Math.max(fitted.d[i], 0), 1);
      peak = Math.max(peak, fitted.d[i]);
    }
    if (peak <= 0) throw new Error(BLANK);
    const canvas = image(height, width);
    const [top, left] = placement(fitted, height, width, task.fit_box < Math.min(height, width));
    blit(fitted, 0, 0, canvas, top, left, fitted.h, fitted.w);
    for (let i = 0; i < canvas.d.length; i++) canvas.d[i] = f32(roundEven(f32(f32(canvas.d[i] / peak) * 255)) / 255);
    return canvas;
  }

  /** ImageData -> the model's float input (height x width x channels, 0..1), as `edge-mnist predict` makes it. */
  function preprocess(data, task) {
    if (PREPROCESS === "whole") return wholeFrame(data, task);
    let img = grayscale(data);
    let low = Infinity, high = -Infinity;
    for (const v of img.d) { if (v < low) low = v; if (v > high) high = v; }
    if (high - low < BLANK_RANGE) throw new Error(BLANK);
    img = shrink(img, MAX_SIDE);
    const [height, width] = task.input_shape;
    if (img.h === height && img.w === width && !lightBackground(img, task)) return img;
    return fit(objectCrop(img, task), task);
  }

  // ---- the model ----

  /** Load the model next to this page, read its description and open it in onnxruntime-web (WASM, one thread). */
  async function load() {
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = new URL("./", document.baseURI).href;
    const response = await fetch(MODEL);
    if (!response.ok) throw new Error(MODEL + ": HTTP " + response.status);
    const bytes = new Uint8Array(await response.arrayBuffer()), model = describe(metadataProps(bytes));
    model.session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    model.input = model.session.inputNames[0];
    model.output = model.session.outputNames[0];
    return model;
  }

  /** int8 input as runtime/base.quantize makes it (float32 division, halves to even, clipped). */
  function quantize(x, model) {
    const q = new Int8Array(x.length), scale = f32(model.inScale);
    for (let i = 0; i < x.length; i++) {
      q[i] = Math.min(127, Math.max(-128, roundEven(f32(x[i] / scale)) + model.inZero));
    }
    return q;
  }

  const ready = load();

  /** Classify an ImageData: {index, label, probs, top (3 best), input (the model's input), ms (all of it),
   * inferenceMs (the model alone)}. */
  async function predict(data) {
    const model = await ready, start = performance.now(), task = model.task;
    const x = preprocess(data, task), shape = [1].concat(task.input_shape);
    const feeds = {};
    feeds[model.input] = new ort.Tensor("int8", quantize(x.d, model), shape);
    const inferStart = performance.now(), raw = (await model.session.run(feeds))[model.output].data;
    const end = performance.now();
    const probs = Array.from(raw, q => (q - model.outZero) * model.outScale);
    const order = probs.map((_, i) => i).sort((a, b) => raw[b] - raw[a] || a - b);
    const entry = i => ({ index: i, label: model.labels[i], prob: probs[i] });
    return { index: order[0], label: model.labels[order[0]], probs: probs, top: order.slice(0, 3).map(entry),
      input: x, ms: end - start, inferenceMs: end - inferStart };
  }

  window.edgeMnist = { ready: ready.then(() => true), predict: predict };
})();
