"""Figures and numbers for the simulator's model card: a gallery of rendered frames and a side-by-side with the
cabaret renderer that the ASCOM Alpaca camera simulator (alpaca-simulators) uses, on the same stars.

    python -m astropolis.models.simulator.card [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from astropolis.models.simulator import Defects, FieldSpec, render
from astropolis.models.simulator.galaxies import catalogue
from astropolis.models.simulator.spec import SimFrame

PACKAGE = Path(__file__).parent
COMPARE_FIELD = FieldSpec(ra_deg=280.0, dec_deg=5.0, seed=21, psf_beta=2.5, include_galaxies=False)


def gallery_cases() -> list[tuple[str, FieldSpec, Defects]]:
    """The frames shown in the card: a galaxy, a clean field and one of each defect."""
    galaxies, _ = catalogue()
    m51 = next(g for g in galaxies if g.name == "NGC5194")
    galaxy = FieldSpec(ra_deg=m51.ra_deg, dec_deg=m51.dec_deg, pixel_scale_arcsec=1.2, seed=3)
    field = FieldSpec(ra_deg=280.0, dec_deg=5.0, seed=4)
    return [
        ('NGC 5194/5195 (OpenNGC), 1.2"/px', galaxy, Defects()),
        ("clean field, b = +4°", field, Defects()),
        ("clouds 0.5", field, Defects(clouds=0.5)),
        ("focus 3 (donuts)", field, Defects(focus=3.0)),
        ('tracking 8" at 30°', field, Defects(tracking_arcsec=8.0, tracking_angle_deg=30.0)),
        ("satellite + aircraft", field, Defects(satellite_trails=1, aircraft_trails=1)),
        ("50 hot pixels, 2 hot columns", field, Defects(hot_pixels=50, hot_columns=2)),
        ("60 cosmic rays", field, Defects(cosmic_rays=60)),
    ]


def _show(ax: Any, data: np.ndarray, title: str) -> None:
    from astropy.visualization import ZScaleInterval

    low, high = ZScaleInterval().get_limits(data)
    ax.imshow(data, origin="lower", cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def gallery(path: Path) -> None:
    """Write the gallery PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = gallery_cases()
    figure, axes = plt.subplots(2, 4, figsize=(14, 7.4))
    for index, (ax, (title, field, defects)) in enumerate(zip(axes.ravel(), cases, strict=True)):
        data = render(field, defects).data
        # The galaxy whole; the others as their central 200x200 pixels, so that single pixels show.
        _show(ax, data if index == 0 else data[156:356, 156:356], title)
    figure.suptitle(
        "astropolis.models.simulator: a 512x512 frame, then 200x200 crops (zscale), north up, east left", fontsize=11
    )
    figure.tight_layout(h_pad=1.2)
    figure.savefig(path, dpi=56)
    plt.close(figure)


def cabaret_frame(frame: SimFrame) -> np.ndarray:
    """The same stars, exposure, sky, camera and seeing rendered by cabaret (the Alpaca camera's renderer)."""
    from astropy.coordinates import SkyCoord
    from cabaret import Camera, Observatory, Site, Telescope
    from cabaret.sources import Sources

    field: FieldSpec = frame.truth["field"]
    stars = frame.truth["stars"]
    camera = Camera(
        width=field.width,
        height=field.height,
        plate_scale=field.pixel_scale_arcsec,
        gain=field.gain_e_per_adu,
        read_noise=field.read_noise_e,
        bias=int(field.bias_adu),
        dark_current=field.dark_e_per_s,
        average_quantum_efficiency=1.0,
        well_depth=int((field.saturation_adu - field.bias_adu) * field.gain_e_per_adu),
    )
    # A 1 m² aperture with QE 1: cabaret's fluxes (photons/s/m²) are then our electrons per second.
    telescope = Telescope(diameter=2.0 / math.sqrt(math.pi))
    sky = field.sky_e_per_pixel / field.exposure_s / field.pixel_scale_arcsec**2
    observatory = Observatory(
        camera=camera, telescope=telescope, site=Site(sky_background=sky, seeing=field.seeing_arcsec)
    )
    sources = Sources(SkyCoord(stars["ra_deg"], stars["dec_deg"], unit="deg"), stars["flux_e"] / field.exposure_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = observatory.generate_image(
            ra=field.ra_deg,
            dec=field.dec_deg,
            exp_time=field.exposure_s,
            seed=field.seed,
            sources=sources,
            wcs=frame.wcs,
            n_star_limit=len(stars["x"]) + 1,
        )
    return np.asarray(image, dtype=np.float32)


def image_stats(data: np.ndarray, frame: SimFrame) -> dict[str, float]:
    """Background, noise and PSF numbers measured the same way on any frame (sep)."""
    import sep

    image = np.ascontiguousarray(data, dtype=np.float32)
    background = sep.Background(image, bw=64, bh=64)
    sub = image - background.back()
    objects = sep.extract(sub, 5.0, err=background.globalrms, minarea=5)
    stars = frame.truth["stars"]
    fwhm, ratio = [], []
    for obj in objects:
        distance = np.hypot(stars["x"] - obj["x"], stars["y"] - obj["y"])
        index = int(np.argmin(distance))
        if distance[index] < 1.0 and 2e3 < stars["flux_e"][index] < 2e5:
            fwhm.append(2.0 * math.sqrt(math.log(2) * (obj["a"] ** 2 + obj["b"] ** 2)))
            ratio.append(obj["flux"] * frame.truth["field"].gain_e_per_adu / stars["flux_e"][index])
    from astropy.stats import sigma_clipped_stats

    _, clipped_median, clipped_std = sigma_clipped_stats(image, sigma=3.0, maxiters=5)
    return {
        "background_median_adu": float(np.median(background.back())),
        "noise_rms_adu": float(background.globalrms),
        "clipped_median_adu": float(clipped_median),
        "clipped_std_adu": float(clipped_std),
        "detections_5sigma": len(objects),
        "moment_fwhm_px_median": float(np.median(fwhm)) if fwhm else float("nan"),
        "flux_over_truth_median": float(np.median(ratio)) if ratio else float("nan"),
        "matched_stars": len(fwhm),
    }


def compare(path_png: Path) -> dict[str, Any]:
    """Render COMPARE_FIELD with both renderers; write the side-by-side PNG and return the statistics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = render(COMPARE_FIELD)
    theirs = cabaret_frame(ours)
    figure, axes = plt.subplots(1, 3, figsize=(14, 5))
    _show(axes[0], ours.data, "astropolis simulator")
    _show(axes[1], theirs, "cabaret (alpaca-simulators' camera renderer)")
    stars = ours.truth["stars"]
    usable = np.flatnonzero(
        (stars["flux_e"] > 5e4)
        & (stars["flux_e"] < 3e5)
        & (np.abs(stars["x"] - 256) < 200)
        & (np.abs(stars["y"] - 256) < 200)
    )
    star = int(usable[np.argmax(stars["flux_e"][usable])]) if usable.size else int(np.argmax(stars["flux_e"]))
    row, column = round(stars["y"][star]), round(stars["x"][star])
    span = slice(max(0, column - 15), column + 16)
    axes[2].plot(np.arange(span.start, span.stop), ours.data[row, span], "o-", label="astropolis", lw=1, ms=3)
    axes[2].plot(np.arange(span.start, span.stop), theirs[row, span], "s-", label="cabaret", lw=1, ms=3, alpha=0.8)
    axes[2].set_title(f"row {row} through a mag {stars['mag'][star]:.1f} star, ADU", fontsize=9)
    axes[2].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path_png, dpi=56)
    plt.close(figure)
    return {
        "field": {"ra_deg": COMPARE_FIELD.ra_deg, "dec_deg": COMPARE_FIELD.dec_deg, "seed": COMPARE_FIELD.seed},
        "astropolis": image_stats(ours.data, ours),
        "cabaret": image_stats(theirs, ours),
    }


def main() -> None:
    """Write gallery.png, cabaret_comparison.png and cabaret_comparison.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PACKAGE)
    args = parser.parse_args()
    gallery(args.out / "gallery.png")
    stats = compare(args.out / "cabaret_comparison.png")
    (args.out / "cabaret_comparison.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
