// fast-style in the browser: runs model.onnx (exported by `scripts/export.py format=web`) with
// onnxruntime-web, WebGPU where the browser has it, else WebAssembly (SIMD; threads when the
// page is cross-origin isolated, else one thread, said on the page).
//
// The network sees the photo at its own size, float32 RGB in [0, 1], (1, 3, H, W), and for a
// multi-style model `style_weights` (S,). Its output s is finished as stylize.py does
// (fast_style.inference.finishing and colour), per pixel, with x the photo:
//
//   s' = preserve_color ? ycbcr_to_rgb(Y(s), Cb(x), Cr(x)) clamped to [0, 1] : s
//   y  = clamp(strength * s' + (1 - strength) * x, 0, 1),  written as round(255 y)
//
// with full-range BT.601 YCbCr (Cb, Cr centred on 0):
//   Y = 0.299 R + 0.587 G + 0.114 B;  Cb = -0.168736 R - 0.331264 G + 0.5 B;  Cr = 0.5 R - 0.418688 G - 0.081312 B
// and ycbcr_to_rgb the exact inverse of that matrix. Nothing is resampled: the result has the
// photo's size, pixel for pixel.
//
// Style weights: `style=a:0.7,b:0.3` (names or indices 0..S-1, a missing weight is 1), finite,
// non-negative, normalised to sum 1: w_s = v_s / sum(v), as stylize.py's style= does.
//
// Scripting: index.html?image=<url>[&style=...][&strength=0.5][&preserve_color=1][&backend=wasm|webgpu][&camera=1]
//   window.fastStyle.ready     Promise, resolves (never rejects) once the first result or an error is there
//                              (without image=, once the model is loaded)
//   window.fastStyle.result    the stylized photo, PNG data URL (null until there is one)
//   window.fastStyle.error     the message shown on the page (null when none)
//   window.fastStyle.stylize(url, {style, strength, preserveColor}) -> Promise of the PNG data URL
//   window.fastStyle.fps, .frames, .lastMs, .backend, .threads

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const RGB_TO_YCBCR = [
  [0.299, 0.587, 0.114],
  [-0.168736, -0.331264, 0.5],
  [0.5, -0.418688, -0.081312],
];
const YCBCR_TO_RGB = invert3(RGB_TO_YCBCR);

function invert3(m) {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

let settleReady;
const fastStyle = {
  ready: new Promise((resolve) => { settleReady = resolve; }),
  result: null, error: null, fps: null, frames: 0, lastMs: null, backend: null, threads: null,
  meta: null, stylize: null,
};
window.fastStyle = fastStyle;
let settled = false;
function settle() {
  if (!settled) { settled = true; settleReady(fastStyle); }
}

function showError(message) {
  fastStyle.error = message;
  const box = $('error');
  box.textContent = message;
  box.style.display = 'block';
  $('status').textContent = 'error';
  settle();
}

function clearError() {
  fastStyle.error = null;
  $('error').style.display = 'none';
}

class PageError extends Error {}

// ------------------------------------------------------------------ the model

let ort = null, session = null, meta = null, styleNames = [], weights = null;

async function loadMeta() {
  let response;
  try {
    response = await fetch('model.json', { cache: 'no-cache' });
  } catch (e) {
    throw new PageError(`model.json could not be fetched (${e.message}); serve this folder with python -m http.server`);
  }
  if (!response.ok) throw new PageError(`model.json is missing (HTTP ${response.status}): this folder is not a fast-style web export; export one with scripts/export.py format=web`);
  let data;
  try { data = await response.json(); } catch (e) {
    throw new PageError(`model.json is not valid JSON (${e.message}); export the folder again`);
  }
  if (data.format !== 'fast-style/web' || !Array.isArray(data.styles) || data.styles.length < 1) {
    throw new PageError('model.json does not describe a fast-style model (format fast-style/web, a styles list); export the folder again');
  }
  return data;
}

async function loadOrt(url) {
  try {
    return await import(new URL(url, location.href).href);
  } catch (e) {
    throw new PageError(`onnxruntime-web could not be loaded from ${url} (${e.message}); `
      + 'without the internet, export with ort_dist=<onnxruntime-web dist/ folder>');
  }
}

async function webgpuAvailable() {
  if (!navigator.gpu) return false;
  try { return !!(await navigator.gpu.requestAdapter()); } catch { return false; }
}

async function createSession(bytes) {
  const wanted = params.get('backend');
  const order = wanted ? [wanted] : ((await webgpuAvailable()) ? ['webgpu', 'wasm'] : ['wasm']);
  const isolated = self.crossOriginIsolated === true;
  ort.env.wasm.numThreads = isolated ? Math.min(navigator.hardwareConcurrency || 1, 8) : 1;
  fastStyle.threads = ort.env.wasm.numThreads;
  let last = null;
  for (const backend of order) {
    try {
      const s = await ort.InferenceSession.create(bytes, { executionProviders: [backend], graphOptimizationLevel: 'all' });
      fastStyle.backend = backend;
      return s;
    } catch (e) { last = e; }
  }
  throw new PageError(`model.onnx could not be loaded (${String(last && last.message || last).split('\n')[0]}); `
    + 'the file is broken or not an ONNX model: export the folder again with scripts/export.py format=web');
}

function checkSession(s) {
  const inputs = s.inputNames, outputs = s.outputNames;
  const several = meta.styles.length > 1;
  const expected = several ? ['image', 'style_weights'] : ['image'];
  if (inputs.length !== expected.length || expected.some((n) => !inputs.includes(n)) || !outputs.includes('stylized')) {
    const what = several && !inputs.includes('style_weights') && inputs.includes('image')
      ? `model.json lists ${meta.styles.length} styles, but model.onnx takes no style_weights`
      : `model.onnx is not a fast-style model: inputs [${inputs.join(', ')}], outputs [${outputs.join(', ')}]; `
        + `expected inputs [${expected.join(', ')}] and output stylized`;
    throw new PageError(`${what}; export the folder again with scripts/export.py format=web`);
  }
}

// style=a:0.7,b:0.3 -> normalised weights (S,)
function parseStyle(text) {
  const names = styleNames, values = new Array(names.length).fill(0), seen = new Set();
  for (const entry of text.split(',')) {
    const [rawName, rawWeight] = entry.split(':');
    const name = (rawName || '').trim();
    if (!name) throw new PageError(`style=${text}: an empty entry; write name[:weight],... with names ${names.join(', ')}`);
    let index = names.indexOf(name);
    if (index < 0 && /^\d+$/.test(name) && Number(name) < names.length) index = Number(name);
    if (index < 0) throw new PageError(`style=${text}: no style ${name} in this model; its styles are ${names.join(', ')}`);
    if (seen.has(index)) throw new PageError(`style=${text}: style ${names[index]} is named twice`);
    seen.add(index);
    const weight = rawWeight === undefined ? 1 : Number(rawWeight);
    if (!Number.isFinite(weight) || weight < 0) throw new PageError(`style=${text}: weight ${rawWeight} of ${name} must be a finite number >= 0`);
    values[index] = weight;
  }
  const sum = values.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) throw new PageError(`style=${text}: the weights sum to 0; give at least one style a positive weight`);
  return values.map((v) => v / sum);
}

async function run(imageData, styleWeights) {
  const { width: w, height: h, data } = imageData;
  const n = w * h, x = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    x[i] = data[4 * i] / 255; x[n + i] = data[4 * i + 1] / 255; x[2 * n + i] = data[4 * i + 2] / 255;
  }
  const feeds = { image: new ort.Tensor('float32', x, [1, 3, h, w]) };
  if (meta.styles.length > 1) {
    if (!styleWeights) {
      throw new PageError(`this model mixes ${meta.styles.length} styles (${meta.styles.join(', ')}); say which: `
        + `&style=${meta.styles[0]}:1 or &style=${meta.styles[0]}:0.7,${meta.styles[1]}:0.3`);
    }
    feeds.style_weights = new ort.Tensor('float32', Float32Array.from(styleWeights), [styleWeights.length]);
  }
  const out = (await session.run(feeds)).stylized;
  const dims = out.dims;
  if (dims.length !== 4 || dims[1] !== 3 || dims[2] !== h || dims[3] !== w) {
    throw new PageError(`the model returned shape [${dims.join(', ')}] for a ${w}x${h} photo, not an image of the same size; `
      + 'model.onnx is not a working style model');
  }
  return { x, s: out.data, w, h };
}

// the finish described at the top of this file; RGBA bytes
function finish({ x, s, w, h }, strength, preserve) {
  const n = w * h, rgba = new Uint8ClampedArray(4 * n);
  const [m0, m1, m2] = RGB_TO_YCBCR, [k0, k1, k2] = YCBCR_TO_RGB;
  const clamp = (v) => (v < 0 ? 0 : v > 1 ? 1 : v);
  for (let i = 0; i < n; i++) {
    let r = s[i], g = s[n + i], b = s[2 * n + i];
    const pr = x[i], pg = x[n + i], pb = x[2 * n + i];
    if (!(Number.isFinite(r) && Number.isFinite(g) && Number.isFinite(b))) {
      throw new PageError("the model's output has NaN or infinite values; its weights are broken");
    }
    if (preserve) {
      const Y = m0[0] * r + m0[1] * g + m0[2] * b;
      const cb = m1[0] * pr + m1[1] * pg + m1[2] * pb;
      const cr = m2[0] * pr + m2[1] * pg + m2[2] * pb;
      r = clamp(k0[0] * Y + k0[1] * cb + k0[2] * cr);
      g = clamp(k1[0] * Y + k1[1] * cb + k1[2] * cr);
      b = clamp(k2[0] * Y + k2[1] * cb + k2[2] * cr);
    }
    if (strength !== 1) {
      r = strength * r + (1 - strength) * pr; g = strength * g + (1 - strength) * pg; b = strength * b + (1 - strength) * pb;
    }
    rgba[4 * i] = clamp(r) * 255; rgba[4 * i + 1] = clamp(g) * 255; rgba[4 * i + 2] = clamp(b) * 255; rgba[4 * i + 3] = 255;
  }
  return new ImageData(rgba, w, h);
}

// ------------------------------------------------------------------ the page

const output = $('output');
const outputContext = output.getContext('2d');
const scratch = document.createElement('canvas');
const scratchContext = scratch.getContext('2d', { willReadFrequently: true });
let last = null; // the last photo's network output, re-finished when strength or colour change
let camera = null;

const strength = () => Number($('strength').value);
const preserve = () => $('preserve').checked;

function show(result) {
  const image = finish(result, strength(), preserve());
  output.width = result.w; output.height = result.h;
  outputContext.putImageData(image, 0, 0);
  return image;
}

function pixelsOf(source, w, h) {
  scratch.width = w; scratch.height = h;
  scratchContext.drawImage(source, 0, 0);
  return scratchContext.getImageData(0, 0, w, h);
}

async function decode(url) {
  let response;
  try { response = await fetch(url); } catch (e) { throw new PageError(`${url}: could not be fetched (${e.message})`); }
  if (!response.ok) throw new PageError(`${url}: HTTP ${response.status}`);
  const blob = await response.blob();
  try {
    return await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new PageError(`${url}: not an image the browser can decode (${e.message})`);
  }
}

async function stylizeBitmap(bitmap) {
  const started = performance.now();
  const pixels = pixelsOf(bitmap, bitmap.width, bitmap.height);
  last = await run(pixels, weights);
  show(last);
  fastStyle.lastMs = performance.now() - started;
  fastStyle.result = output.toDataURL('image/png');
  $('download').disabled = false;
  $('status').textContent = `${bitmap.width}x${bitmap.height} in ${fastStyle.lastMs.toFixed(0)} ms (${fastStyle.backend})`;
  return fastStyle.result;
}

async function stylizeUrl(url, options = {}) {
  if (options.style !== undefined) { weights = parseStyle(options.style); syncSliders(); }
  if (options.strength !== undefined) $('strength').value = String(options.strength);
  if (options.preserveColor !== undefined) $('preserve').checked = !!options.preserveColor;
  return stylizeBitmap(await decode(url));
}

function guard(promise) {
  return promise.then((value) => { clearError(); return value; }, (e) => { showError(e instanceof PageError ? e.message : `error: ${e.message || e}`); });
}

// style picker and mixing sliders (multi-style models)
function buildStyleControls() {
  const box = $('styles');
  if (styleNames.length < 2) return;
  const picker = document.createElement('label');
  picker.textContent = 'Style';
  const select = document.createElement('select');
  select.id = 'style-picker';
  select.innerHTML = styleNames.map((name, i) => `<option value="${i}">${name}</option>`).join('') + '<option value="mix">mix…</option>';
  picker.appendChild(select);
  box.appendChild(picker);
  styleNames.forEach((name, i) => {
    const label = document.createElement('label');
    label.textContent = name;
    const slider = document.createElement('input');
    Object.assign(slider, { type: 'range', min: 0, max: 1, step: 0.01, value: i === 0 ? 1 : 0, id: `mix-${i}` });
    slider.addEventListener('input', () => {
      select.value = 'mix';
      const values = styleNames.map((_, k) => Number($(`mix-${k}`).value));
      const sum = values.reduce((a, b) => a + b, 0);
      weights = sum > 0 ? values.map((v) => v / sum) : null;
      rerun();
    });
    label.appendChild(slider);
    box.appendChild(label);
  });
  select.addEventListener('change', () => {
    if (select.value === 'mix') return;
    weights = styleNames.map((_, k) => (k === Number(select.value) ? 1 : 0));
    syncSliders();
    rerun();
  });
}

function syncSliders() {
  if (!weights) return;
  weights.forEach((w, i) => { const s = $(`mix-${i}`); if (s) s.value = String(w); });
}

let currentBitmap = null;
function rerun() {
  if (!weights) { showError('every style weight is 0; move a slider up'); return; }
  if (currentBitmap && !camera) guard(stylizeBitmap(currentBitmap));
}

async function pickFile(file) {
  if (!file) return;
  stopCamera();
  await guard((async () => {
    try { currentBitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' }); } catch (e) {
      throw new PageError(`${file.name}: not an image the browser can decode`);
    }
    return stylizeBitmap(currentBitmap);
  })());
}

// ------------------------------------------------------------------ webcam

function stopCamera() {
  if (!camera) return;
  camera.running = false;
  camera.stream.getTracks().forEach((t) => t.stop());
  camera = null;
  $('camera').textContent = 'Start webcam';
  $('fps').textContent = '';
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new PageError('this browser gives no camera here (getUserMedia needs https or localhost)');
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    const why = e.name === 'NotFoundError' || e.name === 'OverconstrainedError' ? 'no camera was found'
      : e.name === 'NotAllowedError' ? 'the camera permission was refused' : `${e.name}: ${e.message}`;
    throw new PageError(`webcam: ${why}`);
  }
  const video = $('video');
  video.srcObject = stream;
  await video.play();
  camera = { stream, running: true };
  $('camera').textContent = 'Stop webcam';
  const times = [];
  const me = camera;
  // one frame at a time: while the network runs, the camera's newer frames replace older
  // ones, so a slow backend drops frames instead of queueing them
  while (me.running) {
    if (video.readyState < 2 || !video.videoWidth) { await new Promise((r) => setTimeout(r, 20)); continue; }
    const pixels = pixelsOf(video, video.videoWidth, video.videoHeight);
    const result = await run(pixels, weights);
    if (!me.running) break;
    show(result);
    fastStyle.frames += 1;
    const now = performance.now();
    times.push(now);
    while (times.length > 1 && now - times[0] > 2000) times.shift();
    if (times.length > 1) {
      fastStyle.fps = (times.length - 1) / ((now - times[0]) / 1000);
      $('fps').textContent = `${fastStyle.fps.toFixed(1)} frames/s at ${video.videoWidth}x${video.videoHeight}`;
    }
    await new Promise((r) => requestAnimationFrame(() => r()));
  }
}

function toggleCamera() {
  if (camera) { stopCamera(); return; }
  guard(startCamera().catch((e) => { stopCamera(); throw e; }));
}

// ------------------------------------------------------------------ start-up

async function main() {
  meta = await loadMeta();
  fastStyle.meta = meta;
  styleNames = meta.styles;
  document.title = `${meta.style_name} · fast-style`;
  $('title').textContent = meta.style_name;
  ort = await loadOrt(meta.ort_url);
  let response;
  try { response = await fetch('model.onnx'); } catch (e) { throw new PageError(`model.onnx could not be fetched (${e.message})`); }
  if (!response.ok) throw new PageError(`model.onnx is missing (HTTP ${response.status}); export the folder again`);
  session = await createSession(new Uint8Array(await response.arrayBuffer()));
  checkSession(session);
  if (styleNames.length === 1) weights = null;
  else if (params.has('style')) weights = parseStyle(params.get('style'));
  else if (!params.has('image')) weights = styleNames.map((_, k) => (k === 0 ? 1 : 0));
  buildStyleControls();
  syncSliders();
  if (params.has('strength')) $('strength').value = params.get('strength');
  if (['1', 'true', 'on'].includes(params.get('preserve_color'))) $('preserve').checked = true;
  const threads = fastStyle.backend === 'wasm'
    ? (fastStyle.threads > 1 ? `, ${fastStyle.threads} threads`
      : ', 1 thread (threads need a cross-origin isolated page: COOP/COEP headers)') : '';
  $('backend').textContent = `onnxruntime-web ${meta.ort_version} on ${fastStyle.backend}${threads}; model ${meta.precision} weights`;
  $('status').textContent = 'ready: drop a photo or start the webcam';
  fastStyle.stylize = (url, options) => stylizeUrl(url, options);
  $('file').addEventListener('change', (e) => pickFile(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('click', () => $('file').click());
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); pickFile(e.dataTransfer.files[0]); });
  $('camera').addEventListener('click', toggleCamera);
  const refinish = () => { if (last && !camera) { show(last); fastStyle.result = output.toDataURL('image/png'); } };
  $('strength').addEventListener('input', refinish);
  $('preserve').addEventListener('change', refinish);
  $('download').addEventListener('click', () => {
    const a = document.createElement('a');
    a.href = output.toDataURL('image/png');
    a.download = `${meta.style_name}-stylized.png`;
    a.click();
  });
  if (params.has('image')) {
    currentBitmap = await decode(params.get('image'));
    await stylizeBitmap(currentBitmap);
  }
  if (['1', 'true', 'on'].includes(params.get('camera'))) toggleCamera();
  settle();
}

main().catch((e) => showError(e instanceof PageError ? e.message : `error: ${e.message || e}`));
