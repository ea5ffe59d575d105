"""The viewer's pieces for the page: the JavaScript bundle, inlined safely, and the avatars as base64 3DGS PLYs.

The bundle is ``viewer/dist/viewer.js`` (Spark 2.2.0 + three.js, MIT, built by
esbuild from ``viewer/src/main.js``; ``make env`` builds it when node is
present). Inlined into a ``<script>`` element, any ``</script`` inside it
would end the element early, and ``<!--`` could switch the HTML parser into a
script-data escape state: both are escaped (``<\\/script``, ``<\\!--``),
which JavaScript reads identically inside the string and regex literals
where such text occurs in a bundle.

An avatar with more than ``max_splats`` Gaussians keeps its most opaque
``max_splats`` (the page's size budget; ``report.viewer-max-splats``).
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from pathlib import Path

NO_VIEWER = ("The 3D viewer is not in this report: its bundle ({path}) was not built, because node was not found when "
             "`make env` ran. Install Node.js 18 or newer, run `make env` (it runs `npm ci` and esbuild in viewer/), "
             "then `fairsplat report` (or `dvc repro -f report`).")  # fmt: skip


def inline_script(js: str) -> str:
    """``js`` safe inside ``<script>...</script>``."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE).replace("<!--", "<\\!--")


def load_bundle(path: Path) -> tuple[str | None, str | None]:
    """(bundle text, None), or (None, the message the page shows instead)."""
    if not path.is_file():
        return None, NO_VIEWER.format(path=path)
    return path.read_text(encoding="utf-8"), None


def cap_splats(ply: bytes, max_splats: int | None) -> tuple[bytes, int]:
    """(PLY bytes with at most ``max_splats`` Gaussians, the most opaque kept; the count kept)."""
    import torch

    from fairsplat.splat.gaussians import GaussianSet
    from fairsplat.splat.ply import load_ply, save_ply

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "a.ply"
        p.write_bytes(ply)
        g = load_ply(p)
        n = len(g)
        if max_splats is None or n <= max_splats:
            return ply, n
        keep = torch.sort(torch.topk(g.opacity_logits, max_splats).indices).values
        save_ply(p, GaussianSet(g.means[keep], g.quats[keep], g.log_scales[keep], g.opacity_logits[keep], g.sh[keep]))
        return p.read_bytes(), max_splats


def avatars_json(avatars: list[dict], max_splats: int | None) -> tuple[str, int]:
    """The ``<script type="application/json" id="fairsplat-avatars">`` body and the total splat count."""
    items, total = [], 0
    for a in avatars:
        ply, n = cap_splats(Path(a["path"]).read_bytes(), max_splats)
        total += n
        items.append({"type": a["type"], "label": f"{a['type']}: {a['variant']}",
                      "title": f"{a['subject']} ({a['variant']}, {n} Gaussians)", "ply": base64.b64encode(ply).decode()})  # fmt: skip
    return json.dumps(items).replace("</", "<\\/"), total
