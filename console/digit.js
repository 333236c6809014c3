// A drawing pad for MNIST-style models: white ink on black, turned into a 28×28 image in [0,1] the way
// MNIST was made (the ink's bounding box scaled to fit 20×20, then its centre of mass moved to the centre).

const SIZE = 28;
const BOX = 20;

/** Draws with the mouse, a pen or a finger (pointer events); calls `onStroke` after each stroke. */
export function drawingPad(canvas, onStroke) {
  const ctx = canvas.getContext("2d");
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  clear();
  let last;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
  };
  const line = (to) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = canvas.width / 14;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...(last ?? to));
    ctx.lineTo(...to);
    ctx.stroke();
    last = to;
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = undefined;
    line(at(e));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (last) line(at(e));
  });
  const end = () => {
    if (!last) return;
    last = undefined;
    onStroke();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.style.touchAction = "none";
  return { clear };
}

/** The canvas as a 28×28 row-major array of [0,1] values, MNIST-centred; undefined when nothing is drawn. */
export function mnistPixels(canvas) {
  const { width: w, height: h } = canvas;
  const rgba = canvas.getContext("2d").getImageData(0, 0, w, h).data;
  const ink = new Float32Array(w * h);
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = rgba[(y * w + x) * 4] / 255;
      ink[y * w + x] = v;
      if (v > 0.1) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return undefined;
  // Fit the ink's box into BOX×BOX keeping its aspect ratio, averaging the source pixels each target pixel covers.
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const scale = BOX / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * scale)), th = Math.max(1, Math.round(bh * scale));
  const small = new Float32Array(tw * th);
  for (let ty = 0; ty < th; ty++) {
    for (let tx = 0; tx < tw; tx++) {
      const sx0 = x0 + Math.floor(tx / scale), sx1 = Math.max(sx0 + 1, x0 + Math.floor((tx + 1) / scale));
      const sy0 = y0 + Math.floor(ty / scale), sy1 = Math.max(sy0 + 1, y0 + Math.floor((ty + 1) / scale));
      let sum = 0, n = 0;
      for (let y = sy0; y < Math.min(sy1, y1 + 1); y++) for (let x = sx0; x < Math.min(sx1, x1 + 1); x++, n++) sum += ink[y * w + x];
      small[ty * tw + tx] = n ? sum / n : 0;
    }
  }
  // Centre of mass of the small image, placed at the centre of the 28×28 frame.
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) {
    const v = small[y * tw + x];
    mass += v; mx += v * x; my += v * y;
  }
  const ox = Math.round(SIZE / 2 - 0.5 - mx / mass), oy = Math.round(SIZE / 2 - 0.5 - my / mass);
  const out = Array.from({ length: SIZE }, () => new Array(SIZE).fill(0));
  for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) {
    const X = x + ox, Y = y + oy;
    if (X >= 0 && X < SIZE && Y >= 0 && Y < SIZE) out[Y][X] = Math.min(1, small[y * tw + x]);
  }
  return out;
}

/** Shows the 28×28 input on a small canvas (scaled up with CSS, pixelated). */
export function showPixels(canvas, pixels) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(SIZE, SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const v = Math.round((pixels?.[Math.floor(i / SIZE)][i % SIZE] ?? 0) * 255);
    img.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(img, 0, 0);
}

export function softmax(scores) {
  const max = Math.max(...scores);
  const exps = scores.map((s) => Math.exp(s - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
