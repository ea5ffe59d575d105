"""``reports/index.html``: one self-contained page (no external URL: images are data URIs, the viewer is inlined).

Sections, in order: the run (git and DVC revision); evaluation (variants
present or absent with reasons, per-type tables with 95 % bootstrap CIs over
subjects, the figures, image grids per type); the avatars in 3D (one per
Fitzpatrick type); every stage's headline metrics; plots (curation's ITA
histogram, training curves, each stage's figures); the parameters.

Images above ``max_image_kb`` or past ``max_images_mb`` in total are listed
by path, not embedded: the page has a size budget (``report.max-page-mb``).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairsplat.labels import FITZPATRICK
from fairsplat.report import figures
from fairsplat.report.collect import Run
from fairsplat.report.viewer import avatars_json, inline_script

ROWS = [  # (metric key in evaluate's per_fitzpatrick after "<variant>_", label, unit)
    ("psnr", "PSNR, full image", "dB"), ("psnr_masked", "PSNR, masked to the face", "dB"),
    ("ssim", "SSIM, full image", ""), ("ssim_masked", "SSIM, masked", ""),
    ("lpips_alex", "LPIPS AlexNet, full", ""), ("lpips_alex_masked", "LPIPS AlexNet, masked", ""),
    ("lpips_vgg", "LPIPS VGG, full", ""), ("lpips_vgg_masked", "LPIPS VGG, masked", ""),
    ("delta_ita", "ΔITA of the skin (+ = lighter)", "deg"), ("csim", "CSIM (dlib ResNet cosine)", ""),
    ("aed", "AED (expression L1)", "coef"), ("apd", "APD (rotation L1)", "rad"), ("akd", "AKD (68 landmarks)", "px"),
    ("no_face_rate", "cross outputs with no face found", "share"),
]  # fmt: skip
PAIRED = [("psnr_masked", "masked PSNR", "dB"), ("lpips_alex_masked", "masked LPIPS AlexNet", ""),
          ("abs_delta_ita", "|ΔITA|", "deg"), ("csim", "CSIM", ""), ("aed", "AED", "coef")]  # fmt: skip
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 48px;color:#1d2228}
h1{margin:18px 0 4px}h2{border-bottom:1px solid #ccd;padding-bottom:3px;margin-top:34px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}td,th{border:1px solid #d6d9de;padding:3px 6px;text-align:right}
th{background:#f1f3f5}td.l,th.l{text-align:left}.na{color:#98a}.absent{color:#a33}.small{font-size:12px;color:#556}
img{max-width:100%;image-rendering:auto}figure{margin:10px 0}figcaption{font-size:12px;color:#556}
#fairsplat-viewer{width:1040px;max-width:100%;background:#20242a;color:#eee;min-height:60px}
.viewer-labels{display:flex;justify-content:space-around;padding:4px 0}.viewer-hint,.viewer-message{margin:0;padding:6px 10px;font-size:12px}
nav a{margin-right:12px}pre{background:#f6f7f9;padding:8px;overflow:auto;font-size:12px}
"""


@dataclass
class PageConfig:
    title: str = "fairsplat run report"
    max_image_kb: int = 400
    max_images_mb: float = 3.0
    viewer_max_splats: int | None = 20000


@dataclass
class Built:
    html: str
    info: dict[str, Any] = field(default_factory=dict)


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any) -> str:
    if v is None:
        return '<span class="na">n/a</span>'
    if isinstance(v, bool) or not isinstance(v, int | float):
        return esc(v)
    return esc(f"{v:.4g}")


def _cell(row: dict, key: str) -> str:
    v, ci = row.get(key), row.get(f"{key}_ci")
    if v is None:
        return f"<td>{fmt(None)}</td>"
    return f"<td>{fmt(v)}" + (f' <span class="small">[{fmt(ci[0])}, {fmt(ci[1])}]</span>' if ci else "") + "</td>"


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


class Images:
    """Embeds PNGs while the budget lasts; lists the rest by path."""

    def __init__(self, cfg: PageConfig) -> None:
        self.cfg, self.used, self.skipped = cfg, 0, []

    def figure(self, data: bytes | None, caption: str, path: str | None = None) -> str:
        if data is None:
            return ""
        if len(data) > self.cfg.max_image_kb * 1024 or self.used + len(data) > self.cfg.max_images_mb * 2**20:
            self.skipped.append(path or caption)
            return f'<p class="small">{esc(caption)}: not embedded (page size budget), see <code>{esc(path or "")}</code></p>'
        self.used += len(data)
        return f"<figure>{_img(data, caption)}<figcaption>{esc(caption)}</figcaption></figure>"


def revision_section(run: Run) -> str:
    r = run.revision
    rows = [("git commit", r.get("commit") or "not a git checkout"), ("uncommitted changes", r.get("dirty") or "n/a"),
            ("dvc.lock digest (upstream stages)", r.get("dvc_lock") or "no dvc.lock"), ("dvc version", r.get("dvc") or "n/a")]  # fmt: skip
    body = "".join(f'<tr><th class="l">{esc(k)}</th><td class="l"><code>{esc(v)}</code></td></tr>' for k, v in rows)
    return f'<section id="run"><h2>The run</h2><table>{body}</table></section>'


def evaluation_section(m: dict | None, plots: Path, images: Images) -> str:
    if m is None:
        return '<section id="evaluation"><h2>Evaluation</h2><p class="absent">metrics/evaluate.json not found: stage evaluate has not run.</p></section>'
    out = ['<section id="evaluation"><h2>Evaluation (stage evaluate)</h2>',
           f'<p>{fmt(m.get("subjects"))} held-out subjects, {fmt(m.get("cross_pairs"))} cross-reenactment pairs '
           f'({esc(m.get("cross_pair_rule", ""))}); landmarks: {esc(m.get("landmarks"))}. Numbers are on SynthHeads '
           "unless real data was supplied: not comparable with the published figures (README, Anchors). "
           "Cells: value [95 % bootstrap CI over subjects]; n/a: not scored (see the reasons).</p>"]  # fmt: skip
    variants = m.get("variants", {})
    rows = "".join(f'<tr><td class="l">{esc(v)}</td><td class="l {"" if s == "present" else "absent"}">{esc(s)}</td></tr>'
                   for v, s in variants.items())  # fmt: skip
    other = {k: v for k, v in m.get("absent", {}).items() if k not in variants}
    rows += "".join(f'<tr><td class="l">{esc(k)}</td><td class="l absent">{esc(v)}</td></tr>' for k, v in other.items())
    out.append(f'<table><tr><th class="l">variant / metric</th><th class="l">status</th></tr>{rows}</table>')
    present = [v for v, s in variants.items() if s == "present"]
    per = m.get("per_fitzpatrick", {})
    head = "".join(f"<th>{t}</th>" for t in FITZPATRICK)
    for key, label, unit in ROWS:
        body = ""
        for v in present:
            k = f"{v}_{key}"
            cells = "".join(_cell(per.get(t, {}), k) for t in FITZPATRICK)
            worst = m.get(f"{k}_worst_type")
            body += f'<tr><td class="l">{esc(v)}</td>{cells}<td>{fmt(worst)}</td><td>{fmt(m.get(f"{k}_gap"))}</td></tr>'
        out.append(f"<h3>{esc(label)}{f' ({unit})' if unit else ''}</h3><table><tr><th class='l'>variant</th>{head}"
                   f"<th>worst</th><th>gap</th></tr>{body}</table>")  # fmt: skip
    keys = {k for row in per.values() for k in row if "_vs_" in k}
    pairs = sorted({k[: -len(key) - 1] for k in keys for key, _, _ in PAIRED if k.endswith(f"_{key}")})
    if pairs:
        out.append("<h3>Variant against variant (mean of a - b over the rows both scored)</h3>")
        for key, label, unit in PAIRED:
            body = ""
            for p in pairs:
                cells = "".join(_cell(per.get(t, {}), f"{p}_{key}") for t in FITZPATRICK)
                body += f'<tr><td class="l">{esc(p.replace("_vs_", " - "))}</td>{cells}</tr>'
            out.append(f"<h4>{esc(label)}{f' ({unit})' if unit else ''}</h4><table><tr><th class='l'>a - b</th>{head}</tr>{body}</table>")
    figs = plots / "figures"
    for name in ("psnr_masked", "lpips_alex_masked", "delta_ita", "csim", "aed", "apd", "akd", "no_face_rate"):
        p = figs / f"{name}.png"
        out.append(images.figure(p.read_bytes() if p.is_file() else None, f"{name} per type", str(p)))
    out.append("<h3>Image grids per type: source | each variant | ground truth</h3>")
    for t in FITZPATRICK:
        p = figs / f"grid_{t}.png"
        out.append(images.figure(p.read_bytes() if p.is_file() else None, f"type {t}", str(p)))
    out.append("</section>")
    return "".join(out)


def viewer_section(run: Run, bundle: str | None, reason: str | None, cfg: PageConfig) -> tuple[str, dict]:
    head = '<section id="viewer"><h2>The avatars in 3D</h2>'
    if bundle is None or not run.avatars:
        why = reason if bundle is None else "No avatar to show: stage evaluate left none in data/eval/avatars/."
        return head + f'<p class="absent">{esc(why)}</p></section>', {"viewer": False, "viewer_reason": why, "splats": 0}
    data, total = avatars_json(run.avatars, cfg.viewer_max_splats)
    intro = ("<p>One avatar per Fitzpatrick type (the best variant the run has for the subject shown in the grids), "
             "canonical pose, rendered by Spark (3D Gaussian splatting, WebGL 2) from the page itself.</p>")  # fmt: skip
    body = (f'{intro}<div id="fairsplat-viewer"><p class="viewer-message">loading the viewer...</p></div>'
            f'<script type="application/json" id="fairsplat-avatars">{data}</script>'
            f"<script>{inline_script(bundle)}</script>")  # fmt: skip
    return head + body + "</section>", {"viewer": True, "viewer_reason": None, "splats": total, "avatars": len(run.avatars)}


def stages_section(run: Run) -> str:
    out = ['<section id="stages"><h2>Every stage\'s headline metrics</h2>']
    for s in run.stages:
        if s.metrics is None:
            out.append(f'<details><summary>{esc(s.name)}: <span class="absent">no metrics file</span></summary></details>')
            continue
        rows = ""
        for k, v in s.metrics.items():
            if k == "per_fitzpatrick":
                continue
            shown = fmt(v) if not isinstance(v, dict | list) else f"<code>{esc(json.dumps(v)[:300])}</code>"
            rows += f'<tr><th class="l">{esc(k)}</th><td class="l">{shown}</td></tr>'
        types = " (per-type table in metrics/" + esc(s.name) + ".json)" if "per_fitzpatrick" in s.metrics else ""
        out.append(f"<details><summary>{esc(s.name)}{types}</summary><table>{rows}</table></details>")
    return "".join(out) + "</section>"


def plots_section(run: Run, root: Path, plots: Path, images: Images) -> str:
    out = ['<section id="plots"><h2>Plots</h2>']
    out.append(images.figure(figures.ita_histogram(plots / "curate" / "ita_histogram.csv"), "curate: ITA histogram",
                             str(plots / "curate" / "ita_histogram.csv")))  # fmt: skip
    for s in run.stages:
        if s.curves:
            out.append(images.figure(figures.curves(s.name, s.curves, plots / s.name / "plots" / "metrics"),
                                     f"{s.name}: training curves", str(plots / s.name)))  # fmt: skip
    for s in run.stages:
        if s.name == "evaluate":
            continue
        for p in s.images:
            out.append(images.figure(p.read_bytes(), f"{s.name}: {p.stem}", str(p.relative_to(root) if p.is_relative_to(root) else p)))
    return "".join(out) + "</section>"


def build_page(run: Run, root: Path, plots: Path, bundle: str | None, bundle_reason: str | None, cfg: PageConfig) -> Built:
    images = Images(cfg)
    ev = next((s.metrics for s in run.stages if s.name == "evaluate"), None)
    viewer, vinfo = viewer_section(run, bundle, bundle_reason, cfg)
    parts = [revision_section(run), evaluation_section(ev, plots / "evaluate", images), viewer, stages_section(run),
             plots_section(run, root, plots, images),
             f'<section id="params"><h2>Parameters (params.yaml)</h2><details><summary>show</summary><pre>{esc(run.params_text)}</pre></details></section>']  # fmt: skip
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (("run", "run"), ("evaluation", "evaluation"), ("viewer", "3D viewer"),
                                                          ("stages", "stages"), ("plots", "plots"), ("params", "params")))  # fmt: skip
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(cfg.title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><h1>{esc(cfg.title)}</h1><nav>{nav}</nav>{''.join(parts)}</body></html>\n")  # fmt: skip
    return Built(page, vinfo | {"images_embedded_bytes": images.used, "images_not_embedded": images.skipped})
