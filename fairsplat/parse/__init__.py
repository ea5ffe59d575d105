"""Face parsing: backends (trained smp net, pretrained Segformer, ground truth), training, metrics.

    from fairsplat.parse.backends import BACKENDS, Options
    results = BACKENDS["trained"](Options(model_dir=Path("models/parser"))).parse(items, images)

``backends.py`` holds the interface and registry, ``train.py`` stage
``train_parser``, ``run.py`` stage ``parse``. Deliberately empty of imports:
``plots.py`` is shared with stage degrade, which must not pull in torch.
"""
