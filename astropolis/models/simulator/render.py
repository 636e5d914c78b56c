"""Rendering a frame: sky (stars, galaxies) → clouds → PSF → transients → sky background → flat → detector
defects → noise and digitisation. A pure function of its arguments: same spec, identical array."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np

from astropolis.models.simulator import defects as dx
from astropolis.models.simulator.camera import NORTH_DEG, digitise, flat_field, header_wcs, make_header
from astropolis.models.simulator.galaxies import Galaxy, galaxies_in_cone, render_galaxy
from astropolis.models.simulator.psf import ApertureCurve, Psf, deposit, make_psf
from astropolis.models.simulator.sky import stars_in_cone
from astropolis.models.simulator.spec import Defects, FieldSpec, SimFrame, Transient


def psf_beta(field: FieldSpec) -> float:
    """The frame's Moffat beta: the spec's, or one drawn in 2.5..4.0 from its seed."""
    if field.psf_beta is not None:
        return float(field.psf_beta)
    return float(dx.stream(field.seed, dx.PSF_BETA).uniform(2.5, 4.0))


def frame_psf(field: FieldSpec, defects: Defects) -> Psf:
    """The PSF of a frame: seeing, focus and tracking trail."""
    return make_psf(
        round(field.seeing_arcsec / field.pixel_scale_arcsec, 6),
        round(psf_beta(field), 6),
        round(defects.focus, 6),
        round(defects.tracking_arcsec / field.pixel_scale_arcsec, 6),
        round(defects.tracking_angle_deg, 6),
    )


def _world_to_pixel(wcs: Any, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(ra) == 0:
        return np.zeros(0), np.zeros(0)
    x, y = wcs.wcs_world2pix(ra, dec, 0)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def object_name(field: FieldSpec, galaxies: Sequence[Galaxy] | None = None) -> str:
    """OBJECT for a field: the spec's name, else the OpenNGC galaxy nearest the centre within the frame."""
    if field.object_name:
        return field.object_name
    found = galaxies if galaxies is not None else galaxies_in_cone(field.ra_deg, field.dec_deg, field.radius_deg)
    best, best_sep = "field", math.inf
    for galaxy in found:
        cos_sep = math.sin(math.radians(galaxy.dec_deg)) * math.sin(math.radians(field.dec_deg)) + math.cos(
            math.radians(galaxy.dec_deg)
        ) * math.cos(math.radians(field.dec_deg)) * math.cos(math.radians(galaxy.ra_deg - field.ra_deg))
        separation = math.degrees(math.acos(max(-1.0, min(1.0, cos_sep))))
        if separation <= field.radius_deg * 0.7 and separation < best_sep:
            best, best_sep = galaxy.name, separation
    return best


def render(field: FieldSpec, defects: Defects = Defects(), transients: Sequence[Transient] = ()) -> SimFrame:  # noqa: B008 - frozen dataclass default
    """Render one frame of `field` with `defects` and `transients` (deterministic from field.seed)."""
    height, width = field.height, field.width
    psf = frame_psf(field, defects)
    pad = psf.half
    canvas_shape = (height + 2 * pad, width + 2 * pad)
    canvas = np.zeros(canvas_shape)
    scale = field.pixel_scale_arcsec
    reach = field.radius_deg + (pad + 4) * scale / 3600.0

    galaxies = galaxies_in_cone(field.ra_deg, field.dec_deg, reach) if field.include_galaxies else []
    name = object_name(field, galaxies)
    header = make_header(field, name, {"beta": psf.beta})
    wcs = header_wcs(header)

    # Stars: Hipparcos-2 plus the position-seeded faint population.
    stars = stars_in_cone(field.ra_deg, field.dec_deg, reach, field.date_obs)
    sx, sy = _world_to_pixel(wcs, stars.ra_deg, stars.dec_deg)
    margin = pad - 3
    on_canvas = (sx > -margin) & (sx < width - 1 + margin) & (sy > -margin) & (sy < height - 1 + margin)
    stars, sx, sy = stars.take(on_canvas), sx[on_canvas], sy[on_canvas]
    star_flux = field.flux_e(stars.mag)
    if field.scintillation_1s > 0:  # each star twinkles on its own, less in a longer exposure
        rms = field.scintillation_1s / math.sqrt(field.exposure_s)
        wobble = dx.stream(field.seed, dx.SCINTILLATION).standard_normal(len(star_flux))
        star_flux = star_flux * np.clip(1.0 + rms * wobble, 0.0, None)
    deposit(canvas, sx + pad, sy + pad, star_flux)

    galaxy_truth = []
    for galaxy in galaxies:
        gx, gy = _world_to_pixel(wcs, np.array([galaxy.ra_deg]), np.array([galaxy.dec_deg]))
        flux = float(field.flux_e(galaxy.mag))
        canvas += render_galaxy(canvas_shape, galaxy, float(gx[0]) + pad, float(gy[0]) + pad, flux, scale, NORTH_DEG)
        galaxy_truth.append({**galaxy.as_dict(), "x": float(gx[0]), "y": float(gy[0]), "flux_e": flux})

    sky_e = field.sky_e_per_pixel
    noise_e = math.sqrt(sky_e + field.read_noise_e**2)
    trails = dx.add_satellites(canvas, field.seed, defects.satellite_trails, pad, (height, width), noise_e, psf.fwhm_px)

    # Clouds dim what lies above them (stars, galaxies, satellites), not aircraft.
    pattern = dx.cloud_pattern(field.seed, canvas_shape, pad, scale) if defects.clouds > 0 else None
    transparency = dx.cloud_transparency(pattern, defects.clouds) if pattern is not None else None
    if transparency is not None:
        canvas *= transparency
    trails += dx.add_aircraft(canvas, field.seed, defects.aircraft_trails, pad, (height, width), noise_e, psf.fwhm_px)

    from scipy.signal import fftconvolve

    signal = fftconvolve(canvas, psf.kernel, mode="valid")
    inner = (slice(pad, pad + height), slice(pad, pad + width))
    transparency_frame = transparency[inner] if transparency is not None else np.ones((height, width))
    sky_factor, natural = dx.sky_gradient(field.seed, (height, width))
    if pattern is not None:
        sky_factor = sky_factor * dx.cloud_sky_factor(pattern[inner], defects.clouds)
    flat = flat_field(field.site, width, height)
    expected = (np.clip(signal, 0.0, None) + sky_e * sky_factor) * flat + field.dark_e_per_s * field.exposure_s

    transient_truth = _add_transients(expected, field, psf, wcs, transients, transparency_frame, flat)

    pixels = dx.hot_pixels(field.seed, defects.hot_pixels, (height, width), noise_e)
    columns = dx.hot_columns(field.seed, defects.hot_columns, (height, width), noise_e)
    rays = dx.cosmic_rays(field.seed, defects.cosmic_rays, (height, width))
    dx.add_pixel_defects(expected, pixels, columns)
    dx.add_cosmic_rays(expected, rays)

    draw = (field.noise_draw,) if field.noise_draw else ()
    noise = dx.stream(field.seed, dx.NOISE, *draw).standard_normal((height, width))
    data = digitise(expected, field, noise)

    inside = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
    ix = np.clip(np.rint(sx).astype(np.int64), 0, width - 1)
    iy = np.clip(np.rint(sy).astype(np.int64), 0, height - 1)
    truth: dict[str, Any] = {
        "stars": {
            "ra_deg": stars.ra_deg[inside],
            "dec_deg": stars.dec_deg[inside],
            "x": sx[inside],
            "y": sy[inside],
            "mag": stars.mag[inside],
            "flux_e": star_flux[inside],
            "observed_e": (star_flux * transparency_frame[iy, ix] * flat[iy, ix])[inside],
            "hip": stars.hip[inside],
        },
        "galaxies": galaxy_truth,
        "transients": transient_truth,
        "defects": {**defects.__dict__},
        "trails": trails,
        "hot_pixels": {k: v.tolist() for k, v in pixels.items()},
        "hot_columns": columns,
        "cosmic_rays": [{k: v.tolist() for k, v in hit.items()} for hit in rays],
        "psf": {
            "fwhm_arcsec": field.seeing_arcsec,
            "fwhm_px": psf.fwhm_px,
            "effective_fwhm_px": psf.effective_fwhm_px,
            "effective_fwhm_arcsec": psf.effective_fwhm_px * scale,
            "beta": psf.beta,
            "defocus_px": psf.defocus_px,
            "trail_px": psf.trail_px,
            "trail_angle_deg": psf.trail_angle_deg,
        },
        "sky": {
            "e_per_px": sky_e,
            "adu_per_px": sky_e / field.gain_e_per_adu,
            "gradient": natural,
            "mean_factor": float(np.mean(sky_factor)),
        },
        "transparency": {"mean": float(transparency_frame.mean()), "min": float(transparency_frame.min())},
        "saturated_pixels": int(np.count_nonzero(data >= field.saturation_adu)),
        "object": name,
        "field": field,
    }
    return SimFrame(data=data, header=header, truth=truth)


def _add_transients(
    expected: np.ndarray,
    field: FieldSpec,
    psf: Psf,
    wcs: Any,
    transients: Sequence[Transient],
    transparency: np.ndarray,
    flat: np.ndarray,
) -> list[dict[str, Any]]:
    """Add transients (point sources) to the expected-electrons image in place; return their truth."""
    if not transients:
        return []
    height, width = expected.shape
    curve = ApertureCurve.of(psf.kernel)
    half = psf.half
    records = []
    for transient in transients:
        tx, ty = _world_to_pixel(wcs, np.array([transient.ra_deg]), np.array([transient.dec_deg]))
        x, y = float(tx[0]), float(ty[0])
        record: dict[str, Any] = {"ra_deg": transient.ra_deg, "dec_deg": transient.dec_deg, "x": x, "y": y}
        record["host"] = transient.host
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            records.append({**record, "in_frame": False, "flux_e": 0.0, "snr": 0.0, "mag": transient.mag})
            continue
        ix, iy = round(x), round(y)
        attenuation = float(transparency[iy, ix] * flat[iy, ix])
        # Everything else under the source (sky, host, neighbours, dark) within a 2.5 FWHM disc, per pixel.
        reach = 2.5 * max(psf.effective_fwhm_px, 1.0)
        r = math.ceil(reach)
        ys0, xs0 = slice(max(0, iy - r), min(height, iy + r + 1)), slice(max(0, ix - r), min(width, ix + r + 1))
        yy, xx = np.mgrid[ys0, xs0]
        near = (xx - x) ** 2 + (yy - y) ** 2 <= reach**2
        background = float(expected[ys0, xs0][near].mean()) + field.read_noise_e**2
        if transient.snr is not None:
            flux, radius = curve.flux_for_snr(transient.snr, background)
            snr = transient.snr
        else:
            assert transient.mag is not None
            flux = float(field.flux_e(transient.mag)) * attenuation
            snr, radius = curve.snr(flux, background)
        stamp = np.zeros((2 * half + 7, 2 * half + 7))
        deposit(stamp, np.array([x - ix + half + 3]), np.array([y - iy + half + 3]), np.array([flux]))
        from scipy.signal import fftconvolve

        image = fftconvolve(stamp, psf.kernel, mode="same")
        y0, x0 = iy - half - 3, ix - half - 3
        ys, xs = slice(max(0, y0), min(height, y0 + image.shape[0])), slice(max(0, x0), min(width, x0 + image.shape[1]))
        expected[ys, xs] += np.clip(image[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0], 0.0, None)
        intrinsic = flux / max(attenuation, 1e-9)
        mag = (
            transient.mag
            if transient.mag is not None
            else field.zero_point - 2.5 * math.log10(intrinsic / field.exposure_s)
        )
        records.append(
            {
                **record,
                "in_frame": True,
                "flux_e": flux,
                "flux_adu": flux / field.gain_e_per_adu,
                "snr": snr,
                "mag": mag,
                "aperture_radius_px": radius,
                "background_e_per_px": background - field.read_noise_e**2,
            }
        )
    return records


def render_pair(
    field: FieldSpec,
    *,
    transients: Sequence[Transient] = (),
    reference_defects: Defects = Defects(),  # noqa: B008 - frozen dataclass default
    new_defects: Defects = Defects(),  # noqa: B008 - frozen dataclass default
    shift_arcsec: float = 3.0,
    new_seeing_arcsec: float | None = None,
    new_exposure_s: float | None = None,
    days_between: float = 1.0,
) -> tuple[SimFrame, SimFrame]:
    """(reference, new) frames of the same sky: the new epoch, `days_between` later, points `shift_arcsec` away in
    a seeded direction, has its own seeing (given, or the reference's times 0.85..1.3), exposure (given, or the
    reference's), noise and PSF beta, and carries the transients."""
    reference = render(field, reference_defects)
    rng = dx.stream(field.seed, dx.PAIR)
    angle, factor = rng.uniform(0, 2 * math.pi), rng.uniform(0.85, 1.3)
    new_seed = int(rng.integers(0, 2**31 - 1))
    d_dec = shift_arcsec * math.sin(angle) / 3600.0
    dec = max(-90.0, min(90.0, field.dec_deg + d_dec))
    d_ra = shift_arcsec * math.cos(angle) / 3600.0 / max(math.cos(math.radians(dec)), 1e-6)
    new_field = replace(
        field,
        ra_deg=(field.ra_deg + d_ra) % 360.0,
        dec_deg=dec,
        seeing_arcsec=new_seeing_arcsec if new_seeing_arcsec is not None else field.seeing_arcsec * factor,
        exposure_s=new_exposure_s if new_exposure_s is not None else field.exposure_s,
        seed=new_seed,
        date_obs=field.date_obs + timedelta(days=days_between),
        object_name=reference.truth["object"],
    )
    return reference, render(new_field, new_defects, transients)
