"""The curate stage's two Parquet tables: the curated manifest and the rejects.

Every input lands in exactly one of them (``accepted + rejected == total``).

``manifest.parquet`` — one row per kept crop, in input order:

================ ==================== ============================================
column           type                 meaning
================ ==================== ============================================
image_id         string               from the ingest manifest
source           string
subject_id       string
split            string               train / val / test (subject-disjoint)
path             string               crop PNG, relative to the curate output dir
alpha_path       string               8-bit foreground alpha PNG (relative): the exact
                                      mask ``path`` was composited with over grey
                                      (same crop transform, 0 on padding); made by
                                      the backend named in ``foreground``
src_path         string               the original image
frame_index      int32?               video frame, null for photos
label_race       string?              dataset labels, verbatim (race is not skin tone)
label_gender     string?
label_age        string?
fitzpatrick_gt   string?              ground truth when the source has it
ita_gt           float64?
mask_path        string?              cropped label map PNG (relative), if labels existed
ita              float64              ITA° the type comes from: ``ita_raw``, or the corrected
                                      one (``ita_method``), or the subject's ITA over
                                      video frames (``ita_subject``)
lab              list<float64>[3]     median skin L*, a*, b* behind ``ita`` (per frame)
fitzpatrick      string               "I".."VI" under ``ita_scheme``
ita_category     string               the scheme's own class name ("tan", ...)
ita_scheme       string               key of faces/skin_types.py SCHEMES
ita_raw          float64              ITA° of the skin as photographed (faces/ita.py)
ita_method       string               faces/illumination.py method behind ``ita`` ("raw": none;
                                      a frame without a reference of its own names the
                                      method of its subject's frames that had one)
ita_confidence   float64?             that method's confidence, 0-1
ita_flag         string?              "low_confidence": a correction was asked for but found no
                                      usable reference (or too little confidence); ``ita`` is raw
ita_subject      float64?             video frames: the subject's ITA, the confidence-weighted
                                      median of its frames with a reference, else the
                                      median of all its frames
ita_subject_iqr  float64?             ... and its interquartile range (the spread over frames)
                                      (the Monk Skin Tone column was dropped: photographed skin
                                      never reaches MST 1-4 (L* 88-94) or 9-10 (L* 15-21), so the
                                      nearest swatch only ever said 5-8; README "Skin typing")
skin_mask        string               "labels" or "landmarks"
n_skin_pixels    int32                pixels the ITA used
foreground       string               foreground backend that made ``alpha_path``
                                      (faces/foreground.py: ground_truth, labels,
                                      ellipse, none)
fg_iou_ellipse   float64?             IoU of each photo mask backend (landmark ellipse,
fg_iou_selfie                         MediaPipe selfie matte, head matte) with the
fg_iou_head                           ground-truth alpha, where one exists
landmark_source  string               "ground_truth" (SynthHeads), "mediapipe" or "dlib"
face_flags       list<string>         faces/landmarks.py FLAGS of the kept face ("cut", ...)
n_faces          int32                faces detected (the largest was kept; 1 for
                                      ground-truth landmarks)
face_score       float64?             detector confidence of the kept face (null: ground truth)
other_boxes      list<list<float64>[4]>  x0, y0, x1, y1 (source px) of the other faces
src_width        int32                original size after EXIF rotation
src_height       int32
crop_mode        string               "centre" or "aligned"
crop_size        int32                crop side (px)
crop_box         list<float64>[4]     x0, y0, x1, y1: source-pixel bbox of the crop square
crop_matrix      list<float64>[6]     2x3 row-major source -> crop (pixel centres at integers)
landmarks        list<list<float32>[2]>[68]  iBUG-68 (x, y) in crop pixels
================ ==================== ============================================

``rejects.parquet`` — one row per input not kept: ``image_id, source,
subject_id, path, reason`` (one of ``item.REJECT_REASONS``), ``detail``
(human-readable), ``n_faces`` (int32?), ``ita`` (float64?, set for
``over_quota`` and ``low_chroma``), ``fitzpatrick`` (string?),
``landmark_source`` (string?), ``face_flags`` (list<string>).
"""

from __future__ import annotations

import pyarrow as pa

F64, I32, S = pa.float64(), pa.int32(), pa.string()

MANIFEST_SCHEMA = pa.schema(
    [
        ("image_id", S), ("source", S), ("subject_id", S), ("split", S), ("path", S), ("alpha_path", S), ("src_path", S),
        ("frame_index", I32), ("label_race", S), ("label_gender", S), ("label_age", S),
        ("fitzpatrick_gt", S), ("ita_gt", F64), ("mask_path", S),
        ("ita", F64), ("lab", pa.list_(F64, 3)), ("fitzpatrick", S), ("ita_category", S), ("ita_scheme", S),
        ("ita_raw", F64), ("ita_method", S), ("ita_confidence", F64), ("ita_flag", S), ("ita_subject", F64),
        ("ita_subject_iqr", F64), ("skin_mask", S), ("n_skin_pixels", I32), ("foreground", S),
        ("fg_iou_ellipse", F64), ("fg_iou_selfie", F64), ("fg_iou_head", F64), ("landmark_source", S),
        ("face_flags", pa.list_(S)), ("n_faces", I32), ("face_score", F64),
        ("other_boxes", pa.list_(pa.list_(F64, 4))), ("src_width", I32), ("src_height", I32),
        ("crop_mode", S), ("crop_size", I32), ("crop_box", pa.list_(F64, 4)), ("crop_matrix", pa.list_(F64, 6)),
        ("landmarks", pa.list_(pa.list_(pa.float32(), 2), 68)),
    ]
)  # fmt: skip

REJECTS_SCHEMA = pa.schema(
    [
        ("image_id", S), ("source", S), ("subject_id", S), ("path", S), ("reason", S), ("detail", S),
        ("n_faces", I32), ("ita", F64), ("fitzpatrick", S), ("landmark_source", S), ("face_flags", pa.list_(S)),
    ]
)  # fmt: skip

