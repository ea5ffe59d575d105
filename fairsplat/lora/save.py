"""What stage ``lora`` writes besides its metrics: the adapter in the SoulSplats layout, curves and per-type bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fairsplat.lora.soulsplats import export_soulsplats


ABSENT = "absent.json"
"""Stage lora's whole output when its base cannot take an adapter (a UV generator): the reason, so that
``dvc repro -S train_ff.arch=uv`` runs on and stage evaluate lists the lora variant absent with it."""


def write_absent(out: Path, plots: Path, metrics_dir: Path, reason: str) -> None:
    from fairsplat.io import atomic_dir
    from fairsplat.io.atomic import write_json
    from fairsplat.io.metrics import write_metrics

    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        write_json(tmp / ABSENT, {"absent": True, "reason": reason})
        (plot_tmp / "absent.txt").write_text(reason + "\n")
    write_metrics("lora", {"absent": True, "absent_reason": reason}, root=metrics_dir)


def save_adapter(out: Path, peft_model, section, base_meta: dict[str, Any]) -> int:
    """``lora_weights.pt`` + ``config.json`` + ``training_config.yaml``; returns the weights file's size in bytes."""
    config = {"base_model": "fairsplat generator (models/ff)", "rank": section.rank, "alpha": section.alpha,
              "dropout": section.dropout, "target_modules": list(section.target_modules),
              "layer_names": "decoder.blocks.<i>.attn.<target> (fairsplat/lora/soulsplats.py)",
              "decoder": base_meta["decoder"], "binding": base_meta["binding"]}  # fmt: skip
    training = {k.replace("_", "-"): v for k, v in section.model_dump().items()}
    path = export_soulsplats(peft_model, out, config, training)
    return path.stat().st_size


def split_series(per: dict, names: list[str], metric: str) -> dict[str, dict]:
    """``{name: per_fitzpatrick-shaped block of metric}`` from a table whose keys are ``<name>_<metric>``."""
    out = {}
    for n in names:
        block = {t: {metric: row.get(f"{n}_{metric}"), f"{metric}_ci": row.get(f"{n}_{metric}_ci")} for t, row in per.items()}
        if any(v[metric] is not None for v in block.values()):
            out[n] = block
    return out


def log_and_plot(live, res: dict, metrics: dict, plot_dir: Path) -> None:
    """dvclive curves of each fine-tune, and per-type bars (base vs LoRA vs references) with CIs."""
    from fairsplat.io.plots import bar_chart

    for name, r in res["results"].items():
        for row in r["history"]:
            live.step = int(row["step"])
            for k, v in row.items():
                if k not in ("epoch", "step") and v is not None:
                    live.log_metric(f"lora/{name}/{k}", v)
    live.make_summary()
    per = metrics["per_fitzpatrick"]
    variants = ["base", "lora", "fullft", "balanced"]
    for metric, label in (("psnr_masked", "masked PSNR (dB)"), ("lpips_alex_masked", "masked LPIPS (AlexNet)"),
                          ("delta_ita", "ΔITA of rendered skin (deg, + = lighter)")):  # fmt: skip
        series = split_series(per, variants, metric)
        if series:  # none when the metric is absent (LPIPS without its weights)
            bar_chart(series, metric, plot_dir / f"{metric}.png", ylabel=label, title=f"held-out {label} per type")
    deficits = split_series(per, ["base", "lora", "fullft"], "deficit_psnr_masked")
    if deficits:
        bar_chart(deficits, "deficit_psnr_masked", plot_dir / "deficit_psnr_masked.png",
                  ylabel="dB below the balanced reference", title="PSNR deficit per type")  # fmt: skip
