"""Every metric once, each in its module:

- :mod:`.image`: PSNR, SSIM, MS-SSIM (full-image and masked); :mod:`.lpips`: LPIPS;
- :mod:`.registry`: ``METRICS`` (the image-metric registry), ``Metric``, ``Absent``,
  ``compute``, ``compute_all``;
- :mod:`.landmarks`: NME; :mod:`.segmentation`: confusion, IoU, mIoU;
- :mod:`.colour`: ITA and delta-ITA of skin;
- :mod:`.fairness`: the one per-Fitzpatrick table (bootstrap over subjects, gaps).

Why this file imports nothing (so ``from fairsplat.metrics.registry import METRICS``,
not ``from fairsplat.metrics import METRICS``): importing any submodule runs this
file, and DVC stages list the code they import as deps. Were the registry
imported here, curate and ingest (which only need the fairness table) would
depend on torch-side code and LPIPS weights, and re-run when LPIPS changes.
"""
