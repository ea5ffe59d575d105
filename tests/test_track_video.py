"""Clips: smoothing against noise, failed frames interpolated, stills rejected with a reason, real videos."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fairsplat.config import parse_section
from fairsplat.sections.track import TrackParams
from fairsplat.track.evaluate import nme
from fairsplat.track.fit import Fitter
from fairsplat.track.landmarks import LandmarkFlame
from fairsplat.track.run import fit_config, run_fit
from fairsplat.track.sources import MULTI_FACE, NO_FACE, OK
from fairsplat.testing.track_problems import problem_items, smooth_clip
from fairsplat.track.tables import reject_rows
from fairsplat.testing.toy_head import make_toy_head
from fairsplat.track.video import BAD_VIDEO, jitter, load_videos, read_clip


pytestmark = pytest.mark.usefixtures("one_thread")


VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos_open"


@pytest.fixture(scope="module")
def model():
    return LandmarkFlame(make_toy_head(n_shape=12, n_expr=8))


def fitter_for(model, **over) -> Fitter:
    """The stage's fitter; these clips' targets are exact embedded landmarks plus noise, not a detector's
    silhouette jaw line, so the dynamic contour is off (as ``contour: auto`` does for ground truth)."""
    return Fitter(model, fit_config(parse_section("track", {"contour": "off"} | over, TrackParams)))


@pytest.fixture(scope="module")
def noisy_clip(model):
    clip = smooth_clip(model, 24, seed=2)
    noise = torch.randn(clip.landmarks.shape, generator=torch.Generator().manual_seed(3))  # 1 px, IOD ~110 px
    items = problem_items(clip, clip="talk")
    truth = clip.landmarks.numpy().copy()
    items.targets = (clip.landmarks + noise).numpy().astype(np.float32)
    return items, truth


def test_smoothing_reduces_jitter_and_error(model, noisy_clip):
    """Default smoothness vs none, same clip: less acceleration than the detector, closer to the truth."""
    items, truth = noisy_clip
    smooth = run_fit(items, fitter_for(model))
    rough = run_fit(items, fitter_for(model, **{"smooth-pose": 0.0, "smooth-expr": 0.0, "smooth-transl": 0.0}))
    js, jr = jitter(items, smooth)["talk"], jitter(items, rough)["talk"]
    assert js["jitter_ratio"] < 0.8 * jr["jitter_ratio"], (js, jr)
    assert js["jitter_ratio"] < 0.5  # detector noise mostly removed
    assert 0.85 < js["motion_ratio"] < 1.05  # real motion kept
    e_s, e_r = nme(smooth.landmarks2d, truth).mean(), nme(rough.landmarks2d, truth).mean()
    assert e_s < e_r, (e_s, e_r)
    assert e_s < 0.6 * nme(items.targets, truth).mean()


def test_failed_frames_in_a_clip_are_interpolated(model):
    clip = smooth_clip(model, 12, seed=4)
    status = [OK] * 12
    status[0], status[5], status[6] = NO_FACE, NO_FACE, MULTI_FACE
    items = problem_items(clip, clip="c", status=status)
    run = run_fit(items, fitter_for(model))
    assert run.fitted.all() and list(np.nonzero(run.interpolated)[0]) == [0, 5, 6]
    assert np.isfinite(run.pose).all() and np.isfinite(run.landmarks2d).all()
    err = nme(run.landmarks2d, clip.landmarks.numpy())
    assert err[[5, 6]].max() < 0.05  # linear between neighbours
    truth = clip.landmarks.numpy()
    held = nme(truth[1:2], truth[0:1])[0]  # the start is held at frame 1: as wrong as the motion 0 -> 1
    assert err[0] < held + 0.01, (err[0], held)
    assert reject_rows(items, run) == []


def test_failed_stills_are_rejected_with_reason(model):
    clip = smooth_clip(model, 4, seed=5)
    items = problem_items(clip, status=[OK, NO_FACE, MULTI_FACE, OK])
    items.sequence = [None] * 4
    run = run_fit(items, fitter_for(model))
    rejects = reject_rows(items, run)
    assert [r["reason"] for r in rejects] == [NO_FACE, MULTI_FACE]
    assert int(run.fitted.sum()) + len(rejects) == len(items)
    assert np.isnan(run.pose[1]).all() and np.isfinite(run.pose[[0, 3]]).all()


def test_undecodable_video_is_recorded(tmp_path, model):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    items = load_videos(tmp_path, 18.0, 5.0, 10)
    assert items.status == [BAD_VIDEO]
    run = run_fit(items, fitter_for(model))
    assert [r["reason"] for r in reject_rows(items, run)] == [BAD_VIDEO]


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"{VIDEOS} absent (shared test videos)")
def test_real_video_tracks_and_reports_jitter():
    """A real talking-head clip through dlib: no failure, jitter against the detector's own."""
    from fairsplat.head.procedural import build_procedural_head
    from fairsplat.track.video import clip_items

    clip = read_clip(VIDEOS / "d18.mp4", fps=5.0, max_frames=10)
    items = clip_items(clip, fov_deg=18.0)
    assert len(items) == 10 and items.frame.tolist() == list(range(10))
    run = run_fit(items, fitter_for(LandmarkFlame(build_procedural_head())))
    assert run.fitted.all()
    j = jitter(items, run)[clip.name]
    assert all(np.isfinite(v) for v in j.values()), j
    assert j["jitter_ratio"] < 1.0  # smoother than the detector
    ok = np.array([s == OK for s in items.status])
    assert np.nanmean(nme(run.landmarks2d[ok], items.targets[ok])) < 0.1  # the fit follows the face
