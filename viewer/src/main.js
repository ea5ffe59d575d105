// The report's 3DGS viewer: one avatar per Fitzpatrick type, side by side in one WebGL canvas.
//
// Stage report (fairsplat/report/html.py) inlines this bundle and the avatars into reports/index.html:
//   <div id="fairsplat-viewer"></div>
//   <script type="application/json" id="fairsplat-avatars">[{"type": "I", "label": "...", "ply": "<base64>"}, ...]</script>
// Each "ply" is a standard 3DGS PLY (fairsplat/splat/ply.py) in the head's FLAME frame (metres, y up, face towards +z).
// Nothing is fetched: the splats are decoded from the page, Spark's worker comes from a blob URL.
//
// Spark pitfall (../shared/NOTES.md): the scene needs a SparkRenderer, or it draws nothing.
// The page sets document.body.dataset.viewer to "ready" (first frame drawn after every avatar loaded), "error" or
// "no-webgl", and window.fairsplatViewer = {avatars, splats, error}, for the headless-Chromium check (check.mjs).

import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";

const BACKGROUND = 0x20242a; // the check looks for pixels that differ from this
const SPACING = 0.24; // metres between heads (a head is ~0.17 m wide)

function decode(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function say(root, text, state) {
  const p = document.createElement("p");
  p.className = "viewer-message";
  p.textContent = text;
  root.replaceChildren(p);
  document.body.dataset.viewer = state;
}

async function start() {
  const root = document.getElementById("fairsplat-viewer");
  const data = document.getElementById("fairsplat-avatars");
  if (!root || !data) return;
  const avatars = JSON.parse(data.textContent);
  window.fairsplatViewer = { avatars: avatars.length, splats: 0, error: null };
  if (!avatars.length) return say(root, "No avatar to show.", "empty");
  const probe = document.createElement("canvas");
  if (!probe.getContext("webgl2")) return say(root, "This browser has no WebGL 2: the 3D viewer cannot run here.", "no-webgl");

  const width = root.clientWidth || 960;
  const height = Math.round(width * 0.4);
  const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(width, height);
  renderer.setClearColor(BACKGROUND, 1);
  root.replaceChildren(renderer.domElement);
  renderer.domElement.id = "fairsplat-canvas";

  const scene = new THREE.Scene();
  scene.add(new SparkRenderer({ renderer }));
  const n = avatars.length;
  const span = (n - 1) * SPACING;
  const camera = new THREE.PerspectiveCamera(22, width / height, 0.01, 20);
  const half = Math.tan((11 * Math.PI) / 180); // tan of half the vertical field of view
  const across = (span + SPACING) / 2 / (half * (width / height)); // distance that fits the row's width
  camera.position.set(0, 0, Math.max(across, 0.16 / half) * 1.05); // ... and a head's height (~0.3 m)
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.set(0, 0, 0);
  controls.update();

  const labels = document.createElement("div");
  labels.className = "viewer-labels";
  const meshes = avatars.map((a, i) => {
    const mesh = new SplatMesh({ fileBytes: decode(a.ply), fileName: `${a.type}.ply` });
    mesh.position.set(i * SPACING - span / 2, 0, 0);
    scene.add(mesh);
    const tag = document.createElement("span");
    tag.textContent = a.label || a.type;
    tag.title = a.title || "";
    labels.appendChild(tag);
    return mesh;
  });
  root.appendChild(labels);
  const hint = document.createElement("p");
  hint.className = "viewer-hint";
  hint.textContent = "drag to orbit, scroll to zoom, right-drag to pan";
  root.appendChild(hint);

  await Promise.all(meshes.map((m) => m.initialized));
  window.fairsplatViewer.splats = meshes.reduce((s, m) => s + (m.packedSplats ? m.packedSplats.numSplats : 0), 0);
  let frames = 0;
  renderer.setAnimationLoop(() => {
    controls.update();
    renderer.render(scene, camera);
    frames += 1;
    if (frames === 3) document.body.dataset.viewer = "ready"; // Spark sorts on a worker: give it a few frames
  });
}

start().catch((err) => {
  const root = document.getElementById("fairsplat-viewer");
  if (window.fairsplatViewer) window.fairsplatViewer.error = String(err);
  if (root) say(root, `The 3D viewer failed: ${err}`, "error");
});
