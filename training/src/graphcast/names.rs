//! GraphCast's variable names: which have pressure levels, which are static or forcings, and the names the
//! same quantity has in ERA5 files (the CDS short names WeatherLens's channels use).
//!
//! | GraphCast (`graphcast.py`, WeatherBench2) | read from | notes |
//! |---|---|---|
//! | `geopotential`, `temperature`, `u_component_of_wind`, `v_component_of_wind`, `vertical_velocity`, `specific_humidity` | `z`, `t`, `u`, `v`, `w`, `q` on a level axis | pressure levels |
//! | `2m_temperature`, `10m_u_component_of_wind`, `10m_v_component_of_wind`, `mean_sea_level_pressure` | `t2m`, `u10`, `v10`, `msl` | |
//! | `total_precipitation_6hr` | `tp` | must hold 6-hour accumulations (ERA5 files hold 1-hour ones; a warning says so) |
//! | `toa_incident_solar_radiation` | `tisr` | 1-hour integral, J m⁻², as GraphCast computes it; computed when absent |
//! | `geopotential_at_surface` | `z` WITHOUT a level axis | the single-level ERA5 `z` is the surface geopotential |
//! | `land_sea_mask` | `lsm` | |
//! | `year_progress_*`, `day_progress_*` | — | always computed from the valid times |
//!
//! Short names and units: ECMWF parameter database (codes.ecmwf.int/grib/param-db), as in
//! [`crate::dataset::KNOWN_VARIABLES`]; long names: WeatherBench2 / GraphCast (`graphcast.py`,
//! `data_utils.py`). Units agree (GraphCast's data are ERA5's).

/// graphcast.py `ALL_ATMOSPHERIC_VARS`: the variables given on pressure levels.
pub const ATMOSPHERIC: &[&str] = &[
    "potential_vorticity",
    "specific_rain_water_content",
    "specific_snow_water_content",
    "geopotential",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
    "specific_humidity",
    "vertical_velocity",
    "vorticity",
    "divergence",
    "relative_humidity",
    "ozone_mass_mixing_ratio",
    "specific_cloud_liquid_water_content",
    "specific_cloud_ice_water_content",
    "fraction_of_cloud_cover",
];

/// graphcast.py `STATIC_VARS`: fields on (lat, lon) only.
pub const STATIC: &[&str] = &["geopotential_at_surface", "land_sea_mask"];

/// data_utils.py `TISR`.
pub const TOA: &str = "toa_incident_solar_radiation";

/// graphcast.py `GENERATED_FORCING_VARS`, derived from the valid times (data_utils.py `add_derived_vars`).
pub const PROGRESS: &[&str] = &[
    "year_progress_sin",
    "year_progress_cos",
    "day_progress_sin",
    "day_progress_cos",
];

/// The 6-hour precipitation, whose ERA5 short name `tp` is usually a 1-hour accumulation.
pub const PRECIPITATION_6H: &str = "total_precipitation_6hr";

pub fn is_atmospheric(variable: &str) -> bool {
    ATMOSPHERIC.contains(&variable)
}

pub fn is_static(variable: &str) -> bool {
    STATIC.contains(&variable)
}

/// ERA5 short names of the GraphCast variables that WeatherBench2's names do not cover
/// ([`crate::dataset::short_name_of_weatherbench2`] gives the rest); `z` means `geopotential` with a level axis
/// and `geopotential_at_surface` without one.
const GRAPHCAST_ONLY_NAMES: &[(&str, &str)] = &[
    ("total_precipitation_6hr", "tp"),
    ("geopotential_at_surface", "z"),
    ("land_sea_mask", "lsm"),
];

/// The ERA5 short name of GraphCast variable `variable` (`geopotential` -> `z`), if it has one.
pub fn era5_short_name(variable: &str) -> Option<&'static str> {
    GRAPHCAST_ONLY_NAMES
        .iter()
        .find(|(long, _)| *long == variable)
        .map(|(_, short)| *short)
        .or_else(|| crate::dataset::short_name_of_weatherbench2(variable))
}

/// The names a GraphCast variable may have in a file, GraphCast's own first.
pub fn stored_names(variable: &str) -> Vec<&str> {
    std::iter::once(variable)
        .chain(era5_short_name(variable))
        .collect()
}

/// Units of a GraphCast variable for files WeatherLens writes (ECMWF parameter database).
pub fn units(variable: &str) -> Option<&'static str> {
    let short = era5_short_name(variable)?;
    match short {
        "lsm" => Some("(0 - 1)"),
        _ => crate::dataset::KNOWN_VARIABLES
            .iter()
            .find(|k| k.short_name == short)
            .map(|k| k.units),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era5_names_and_units() {
        assert_eq!(stored_names("geopotential"), ["geopotential", "z"]);
        assert_eq!(stored_names("land_sea_mask"), ["land_sea_mask", "lsm"]);
        assert_eq!(stored_names("year_progress_sin"), ["year_progress_sin"]);
        assert_eq!(units("geopotential"), Some("m**2 s**-2"));
        assert_eq!(units("total_precipitation_6hr"), Some("m"));
        assert_eq!(units("land_sea_mask"), Some("(0 - 1)"));
        // Every variable of GraphCast's task configs (graphcast.py's TASK_13 and TASK).
        for long in [
            "geopotential",
            "temperature",
            "u_component_of_wind",
            "v_component_of_wind",
            "vertical_velocity",
            "specific_humidity",
            "2m_temperature",
            "10m_u_component_of_wind",
            "10m_v_component_of_wind",
            "mean_sea_level_pressure",
            "total_precipitation_6hr",
            "toa_incident_solar_radiation",
            "geopotential_at_surface",
            "land_sea_mask",
        ] {
            assert!(
                era5_short_name(long).is_some() && units(long).is_some(),
                "{long}"
            );
        }
    }
}
