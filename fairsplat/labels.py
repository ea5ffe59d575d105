"""Label schemes shared by the head model, SynthHeads, parsing and degradation.

Why one module: the head model labels its faces, SynthHeads renders those labels
to maps, the parser is trained on them and degradation reads them back. If any
of those used its own ids the pipeline would silently mix classes.

The parsing scheme is CelebAMask-HQ's 19 classes, in the order of its own
``g_mask.py`` (background = 0, then the mask-file names). ``l_``/``r_`` mean the
*subject's* left/right (so ``l_eye`` appears on the image's right in a frontal
photo). The iBUG-68 landmark order is the 300-W one (index 0 is the jaw point on
the subject's right).
"""

from __future__ import annotations

CELEBAMASK_CLASSES: tuple[str, ...] = (
    "background",  # 0
    "skin",  # 1
    "nose",  # 2
    "eye_g",  # 3  eyeglasses (unused by the head model)
    "l_eye",  # 4
    "r_eye",  # 5
    "l_brow",  # 6
    "r_brow",  # 7
    "l_ear",  # 8
    "r_ear",  # 9
    "mouth",  # 10 mouth interior
    "u_lip",  # 11
    "l_lip",  # 12
    "hair",  # 13 hair and scalp
    "hat",  # 14 (unused)
    "ear_r",  # 15 earring (unused)
    "neck_l",  # 16 necklace (unused)
    "neck",  # 17
    "cloth",  # 18 (unused)
)
LABEL: dict[str, int] = {name: i for i, name in enumerate(CELEBAMASK_CLASSES)}
NUM_CLASSES = len(CELEBAMASK_CLASSES)

# Coarse regions used by the seed-001 degradation strengths and by the
# ITA skin mask. Each maps to the CelebAMask-HQ ids it covers.
REGION_GROUPS: dict[str, tuple[int, ...]] = {
    "mouth": (LABEL["mouth"], LABEL["u_lip"], LABEL["l_lip"]),
    "eyes": (LABEL["l_eye"], LABEL["r_eye"], LABEL["l_brow"], LABEL["r_brow"]),
    "hair": (LABEL["hair"],),
    "nose": (LABEL["nose"],),
    "skin": (LABEL["skin"], LABEL["l_ear"], LABEL["r_ear"], LABEL["neck"]),
}

# iBUG 300-W 68-point groups (index ranges, end exclusive).
IBUG68_GROUPS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17),
    "r_brow": (17, 22),
    "l_brow": (22, 27),
    "nose_bridge": (27, 31),
    "nostrils": (31, 36),
    "r_eye": (36, 42),
    "l_eye": (42, 48),
    "outer_lip": (48, 60),
    "inner_lip": (60, 68),
}

# Fitzpatrick types in order; every per-type metric table uses these keys.
FITZPATRICK: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI")
