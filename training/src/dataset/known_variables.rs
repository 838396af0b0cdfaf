//! CF metadata of the ERA5 variables WeatherLens writes, by ECMWF short name.
//!
//! Long names and units are those of the ECMWF parameter database (https://codes.ecmwf.int/grib/param-db/) as
//! they appear in CDS NetCDF files; standard names are from the CF standard name table (v84) and are given only
//! where a CF name means exactly the ERA5 quantity.

/// CF attributes for one short name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownVariable {
    pub short_name: &'static str,
    pub long_name: &'static str,
    pub units: &'static str,
    pub standard_name: Option<&'static str>,
}

const fn known(
    short_name: &'static str,
    long_name: &'static str,
    units: &'static str,
    standard_name: Option<&'static str>,
) -> KnownVariable {
    KnownVariable {
        short_name,
        long_name,
        units,
        standard_name,
    }
}

/// The table itself: pressure-level variables first, then single-level ones.
pub const KNOWN_VARIABLES: &[KnownVariable] = &[
    known("z", "Geopotential", "m**2 s**-2", Some("geopotential")),
    known("t", "Temperature", "K", Some("air_temperature")),
    known("u", "U component of wind", "m s**-1", Some("eastward_wind")),
    known(
        "v",
        "V component of wind",
        "m s**-1",
        Some("northward_wind"),
    ),
    known(
        "w",
        "Vertical velocity",
        "Pa s**-1",
        Some("lagrangian_tendency_of_air_pressure"),
    ),
    known(
        "q",
        "Specific humidity",
        "kg kg**-1",
        Some("specific_humidity"),
    ),
    known("r", "Relative humidity", "%", Some("relative_humidity")),
    known(
        "vo",
        "Vorticity (relative)",
        "s**-1",
        Some("atmosphere_relative_vorticity"),
    ),
    known("d", "Divergence", "s**-1", Some("divergence_of_wind")),
    known("t2m", "2 metre temperature", "K", None),
    known("u10", "10 metre U wind component", "m s**-1", None),
    known("v10", "10 metre V wind component", "m s**-1", None),
    known(
        "msl",
        "Mean sea level pressure",
        "Pa",
        Some("air_pressure_at_mean_sea_level"),
    ),
    known("sp", "Surface pressure", "Pa", Some("surface_air_pressure")),
    known("tp", "Total precipitation", "m", None),
    known("tisr", "TOA incident solar radiation", "J m**-2", None),
];

/// WeatherBench2 variable names (the CDS request names that WeatherBench2 / ARCO-ERA5 Zarr stores use) and the
/// short names they stand for.
pub const WEATHERBENCH2_NAMES: &[(&str, &str)] = &[
    ("geopotential", "z"),
    ("temperature", "t"),
    ("u_component_of_wind", "u"),
    ("v_component_of_wind", "v"),
    ("vertical_velocity", "w"),
    ("specific_humidity", "q"),
    ("relative_humidity", "r"),
    ("vorticity", "vo"),
    ("divergence", "d"),
    ("2m_temperature", "t2m"),
    ("10m_u_component_of_wind", "u10"),
    ("10m_v_component_of_wind", "v10"),
    ("mean_sea_level_pressure", "msl"),
    ("surface_pressure", "sp"),
    ("total_precipitation", "tp"),
    ("toa_incident_solar_radiation", "tisr"),
];

/// The short name of a WeatherBench2 variable name (`geopotential` -> `z`).
pub fn short_name_of_weatherbench2(long_name: &str) -> Option<&'static str> {
    WEATHERBENCH2_NAMES
        .iter()
        .find(|(long, _)| *long == long_name)
        .map(|(_, short)| *short)
}

/// The WeatherBench2 variable name of a short name (`z` -> `geopotential`).
pub fn weatherbench2_name(short_name: &str) -> Option<&'static str> {
    WEATHERBENCH2_NAMES
        .iter()
        .find(|(_, short)| *short == short_name)
        .map(|(long, _)| *long)
}

/// Looks a short name up in [`KNOWN_VARIABLES`].
pub fn lookup(short_name: &str) -> Option<&'static KnownVariable> {
    KNOWN_VARIABLES.iter().find(|k| k.short_name == short_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_unique_and_found() {
        for (i, a) in KNOWN_VARIABLES.iter().enumerate() {
            assert!(
                KNOWN_VARIABLES[i + 1..]
                    .iter()
                    .all(|b| b.short_name != a.short_name),
                "{}",
                a.short_name
            );
            assert_eq!(lookup(a.short_name), Some(a));
        }
        assert_eq!(
            lookup("z").map(|k| k.standard_name),
            Some(Some("geopotential"))
        );
        assert_eq!(lookup("nonexistent"), None);
    }

    #[test]
    fn weatherbench2_names_map_to_known_short_names_both_ways() {
        for &(long, short) in WEATHERBENCH2_NAMES {
            assert!(lookup(short).is_some(), "{short}");
            assert_eq!(short_name_of_weatherbench2(long), Some(short));
            assert_eq!(weatherbench2_name(short), Some(long));
        }
        assert_eq!(short_name_of_weatherbench2("geopotential"), Some("z"));
        assert_eq!(weatherbench2_name("u"), Some("u_component_of_wind"));
        assert_eq!(short_name_of_weatherbench2("z"), None);
    }
}
