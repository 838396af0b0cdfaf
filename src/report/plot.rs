//! The report's figures, each written as PNG and SVG from one drawing routine: line plots of named curves
//! (velocity vs layer, centroid vs depth, RMSE vs lead) and annotated heat maps with a colour bar (CKA matrices,
//! the error-correlation matrix). Figures are drawn in memory and each file written as one unit
//! ([`weatherlens_models::files::write_atomic`]), so a reader never sees half a figure.
//!
//! Curves take the Okabe–Ito colours (Okabe & Ito 2008, "Color Universal Design"), distinguishable with every
//! common colour-vision deficiency; their yellow is left out, since it vanishes on white.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use weatherlens_models::files::{self, FileError};

/// Pixel size of every figure (PNG pixels, SVG user units).
const FIGURE_SIZE: (u32, u32) = (960, 640);
/// Width of the colour bar strip beside a heat map.
const COLOUR_BAR_WIDTH: u32 = 130;
const FONT: &str = "sans-serif";

/// Okabe–Ito colours without yellow, in the order curves take them: blue, vermillion, bluish green, reddish
/// purple, orange, sky blue, black.
const PALETTE: [(u8, u8, u8); 7] = [
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (0, 0, 0),
];

/// Viridis (van der Walt & Smith 2015, matplotlib's default colour map) sampled at 0, 1/8, ..., 1: perceptually
/// uniform and readable in grey scale; linear interpolation between these stops.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// What can go wrong while writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "heat map \"{title}\": {values} values for {rows} row labels × {columns} column labels"
    )]
    HeatMapShape {
        title: String,
        values: usize,
        rows: usize,
        columns: usize,
    },
    #[error("line plot \"{title}\": no curve has a finite point")]
    NoPoints { title: String },
}

/// The two files of a figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// One named curve of a line plot.
#[derive(Debug, Clone, Copy)]
pub struct Curve<'a> {
    /// Legend entry.
    pub name: &'a str,
    /// (x, y) in drawing order; points with a non-finite coordinate are left out.
    pub points: &'a [(f64, f64)],
}

/// Several named curves on shared axes.
#[derive(Debug, Clone, Copy)]
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub curves: &'a [Curve<'a>],
    /// Ticks at whole numbers only (layer indices, lead days).
    pub integer_x: bool,
}

/// A labelled matrix: `values` is [row_labels.len(), column_labels.len()] row-major, row 0 drawn at the top.
#[derive(Debug, Clone, Copy)]
pub struct HeatMap<'a, S: AsRef<str>> {
    pub title: &'a str,
    pub row_labels: &'a [S],
    pub column_labels: &'a [S],
    pub values: &'a [f64],
    /// Colour scale limits; None takes the finite values' minimum and maximum.
    pub value_range: Option<(f64, f64)>,
}

/// Values at points on the globe: `lat`, `lon` (degrees) and `values` of equal length.
#[derive(Debug, Clone, Copy)]
pub struct PointMap<'a> {
    pub title: &'a str,
    pub lat: &'a [f64],
    pub lon: &'a [f64],
    pub values: &'a [f64],
    /// Colour scale limits; None takes the finite values' minimum and maximum.
    pub value_range: Option<(f64, f64)>,
}

/// Writes `stem`.png and `stem`.svg: every point a dot coloured by its value on a longitude × latitude frame
/// (equirectangular, −180..180 × −90..90; non-finite values grey), with a colour bar.
pub fn point_map(stem: &Path, map: &PointMap) -> Result<PlotFiles, PlotError> {
    if map.lat.len() != map.values.len()
        || map.lon.len() != map.values.len()
        || map.values.is_empty()
    {
        return Err(PlotError::HeatMapShape {
            title: map.title.to_owned(),
            values: map.values.len(),
            rows: map.lat.len(),
            columns: map.lon.len(),
        });
    }
    let range = map
        .value_range
        .or_else(|| {
            let finite = || map.values.iter().copied().filter(|value| value.is_finite());
            Some((finite().reduce(f64::min)?, finite().reduce(f64::max)?))
        })
        .map_or((0.0, 1.0), |(low, high)| {
            if high > low {
                (low, high)
            } else {
                (low - 0.5, low + 0.5)
            }
        });
    write_figure(stem, &MapFigure { map, range })
}

struct MapFigure<'a> {
    map: &'a PointMap<'a>,
    range: (f64, f64),
}

impl Figure for MapFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|error| error.to_string())?;
        let (map_area, bar_area) = root.split_horizontally(FIGURE_SIZE.0 - COLOUR_BAR_WIDTH);
        let mut chart = ChartBuilder::on(&map_area)
            .caption(self.map.title, (FONT, 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-180.0..180.0, -90.0..90.0)
            .map_err(|error| error.to_string())?;
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(7)
            .x_desc("longitude (°E)")
            .y_desc("latitude (°N)")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|error| error.to_string())?;
        let (width, height) = chart.plotting_area().dim_in_pixel();
        // Dots about the size of a node's share of the frame.
        let per_point =
            (f64::from(width) * f64::from(height) / self.map.values.len() as f64).sqrt();
        let radius = (0.45 * per_point).clamp(1.5, 12.0) as i32;
        let (low, high) = self.range;
        chart
            .draw_series(
                self.map
                    .lat
                    .iter()
                    .zip(self.map.lon)
                    .zip(self.map.values)
                    .map(|((&lat, &lon), &value)| {
                        let lon = (lon + 180.0).rem_euclid(360.0) - 180.0;
                        let colour = if value.is_finite() {
                            viridis((value - low) / (high - low))
                        } else {
                            RGBColor(190, 190, 190)
                        };
                        Circle::new((lon, lat), radius, colour.filled())
                    }),
            )
            .map_err(|error| error.to_string())?;
        draw_colour_bar(&bar_area, self.range)
    }
}

/// Writes `stem`.png and `stem`.svg with the curves, axis labels and a legend.
pub fn line_plot(stem: &Path, plot: &LinePlot) -> Result<PlotFiles, PlotError> {
    let finite = || {
        plot.curves
            .iter()
            .flat_map(|curve| curve.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let x_range = padded_range(finite().map(|&(x, _)| x));
    let y_range = padded_range(finite().map(|&(_, y)| y));
    let (Some(x_range), Some(y_range)) = (x_range, y_range) else {
        return Err(PlotError::NoPoints {
            title: plot.title.to_owned(),
        });
    };
    write_figure(
        stem,
        &LineFigure {
            plot,
            x_range,
            y_range,
        },
    )
}

/// Writes `stem`.png and `stem`.svg with every cell coloured and annotated with its value (two decimals), the
/// labels along both axes, and a colour bar.
pub fn heat_map<S: AsRef<str>>(stem: &Path, map: &HeatMap<S>) -> Result<PlotFiles, PlotError> {
    let (rows, columns) = (map.row_labels.len(), map.column_labels.len());
    if rows == 0 || columns == 0 || map.values.len() != rows * columns {
        return Err(PlotError::HeatMapShape {
            title: map.title.to_owned(),
            values: map.values.len(),
            rows,
            columns,
        });
    }
    let (low, high) = map
        .value_range
        .or_else(|| {
            let finite = || map.values.iter().copied().filter(|value| value.is_finite());
            Some((finite().reduce(f64::min)?, finite().reduce(f64::max)?))
        })
        .map_or((0.0, 1.0), |(low, high)| {
            if high > low {
                (low, high)
            } else {
                (low - 0.5, low + 0.5)
            }
        });
    write_figure(
        stem,
        &HeatMapFigure {
            map,
            range: (low, high),
        },
    )
}

/// Something drawn the same way on every backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

struct LineFigure<'a> {
    plot: &'a LinePlot<'a>,
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
}

impl Figure for LineFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_lines(root, self.plot, self.x_range.clone(), self.y_range.clone())
    }
}

struct HeatMapFigure<'a, S: AsRef<str>> {
    map: &'a HeatMap<'a, S>,
    range: (f64, f64),
}

impl<S: AsRef<str>> Figure for HeatMapFigure<'_, S> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_heat_map(root, self.map, self.range)
    }
}

/// Draws the figure into a PNG and an SVG in memory and writes each file as one unit.
fn write_figure(stem: &Path, figure: &impl Figure) -> Result<PlotFiles, PlotError> {
    let files = PlotFiles {
        png: with_suffix(stem, ".png"),
        svg: with_suffix(stem, ".svg"),
    };
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |message: String| PlotError::Draw { path, message }
    };
    let (width, height) = FIGURE_SIZE;
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, FIGURE_SIZE).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(|error| error.to_string()))
            .map_err(failed(&files.png))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, image::ColorType::Rgb8)
        .map_err(|error| failed(&files.png)(error.to_string()))?;
    files::write_atomic(&files.png, &png)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, FIGURE_SIZE).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(|error| error.to_string()))
            .map_err(failed(&files.svg))?;
    }
    files::write_atomic(&files.svg, svg.as_bytes())?;
    Ok(files)
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(stem.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The finite values' span with 5 % padding (a single value gets ±0.5), or None for no values.
fn padded_range(values: impl Iterator<Item = f64>) -> Option<std::ops::Range<f64>> {
    let (low, high) = values.fold(None, |span: Option<(f64, f64)>, value| {
        Some(span.map_or((value, value), |(low, high)| {
            (low.min(value), high.max(value))
        }))
    })?;
    let pad = if high > low { 0.05 * (high - low) } else { 0.5 };
    Some(low - pad..high + pad)
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &LinePlot,
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|error| error.to_string())?;
    // Whole-number ticks: asking for at most one tick per integer of the span makes plotters pick a step of
    // 1, 2, 5, 10, ..., all whole numbers.
    let whole_ticks = ((x_range.end.floor() - x_range.start.ceil()) as usize + 1).clamp(2, 12);
    let mut chart = ChartBuilder::on(root)
        .caption(plot.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|error| error.to_string())?;
    let whole = |x: &f64| format!("{x:.0}");
    let mut mesh = chart.configure_mesh();
    if plot.integer_x {
        mesh.x_labels(whole_ticks).x_label_formatter(&whole);
    }
    mesh.x_desc(plot.x_label)
        .y_desc(plot.y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(|error| error.to_string())?;
    for (index, curve) in plot.curves.iter().enumerate() {
        let (red, green, blue) = PALETTE[index % PALETTE.len()];
        let colour = RGBColor(red, green, blue).to_rgba();
        let points: Vec<(f64, f64)> = curve
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|error| error.to_string())?
            .label(curve.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, 3, colour.filled())),
            )
            .map_err(|error| error.to_string())?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|error| error.to_string())?;
    Ok(())
}

fn draw_heat_map<DB: DrawingBackend, S: AsRef<str>>(
    root: &DrawingArea<DB, Shift>,
    map: &HeatMap<S>,
    (low, high): (f64, f64),
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|error| error.to_string())?;
    let (rows, columns) = (map.row_labels.len(), map.column_labels.len());
    let (matrix_area, bar_area) = root.split_horizontally(FIGURE_SIZE.0 - COLOUR_BAR_WIDTH);
    let longest = |labels: &[S]| {
        labels
            .iter()
            .map(|label| label.as_ref().chars().count())
            .max()
            .unwrap_or(0)
    };
    let row_label_width = (longest(map.row_labels) as u32 * 8 + 16).clamp(40, 240);
    // Column labels run horizontally while they fit a cell at a readable size, else they turn vertical.
    let estimated_cell_width =
        f64::from(FIGURE_SIZE.0 - COLOUR_BAR_WIDTH - row_label_width - 32) / columns as f64;
    let column_label_chars = longest(map.column_labels).max(1) as f64;
    let horizontal_font = estimated_cell_width / (0.62 * column_label_chars);
    let vertical_labels = horizontal_font < 10.0;
    let column_font = if vertical_labels {
        (estimated_cell_width * 0.8).clamp(7.0, 13.0)
    } else {
        horizontal_font.min(14.0)
    };
    let column_label_height = if vertical_labels {
        (column_label_chars * column_font * 0.62 + 16.0).clamp(40.0, 200.0) as u32
    } else {
        40
    };
    let mut chart = ChartBuilder::on(&matrix_area)
        .caption(map.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(column_label_height)
        .y_label_area_size(row_label_width)
        .build_cartesian_2d(0.0..columns as f64, 0.0..rows as f64)
        .map_err(|error| error.to_string())?;
    let (width, height) = chart.plotting_area().dim_in_pixel();
    let (cell_width, cell_height) = (width as f64 / columns as f64, height as f64 / rows as f64);
    let value_font = (cell_width.min(cell_height) / 3.2).clamp(7.0, 16.0);
    // Row r is drawn at height rows − r − 1 so that row 0 sits at the top.
    for row in 0..rows {
        for column in 0..columns {
            let value = map.values[row * columns + column];
            let (x, y) = (column as f64, (rows - row - 1) as f64);
            let fraction = (value - low) / (high - low);
            let fill = if value.is_finite() {
                viridis(fraction)
            } else {
                RGBColor(190, 190, 190)
            };
            let ink = if value.is_finite() && fraction > 0.6 {
                BLACK
            } else {
                WHITE
            };
            let text = if value.is_finite() {
                format!("{value:.2}")
            } else {
                "nan".to_owned()
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    fill.filled(),
                )))
                .map_err(|error| error.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (x + 0.5, y + 0.5),
                    anchored(
                        (FONT, value_font).into_font().color(&ink),
                        HPos::Center,
                        VPos::Center,
                    ),
                )))
                .map_err(|error| error.to_string())?;
        }
    }
    // Axis labels go on the matrix area itself (the plotting area would clip them), at the cells' pixel centres.
    for (column, label) in map.column_labels.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(column as f64 + 0.5, 0.0));
        let font = (FONT, column_font).into_font().color(&BLACK);
        let style = if vertical_labels {
            anchored(
                font.transform(FontTransform::Rotate90),
                HPos::Left,
                VPos::Center,
            )
        } else {
            anchored(font, HPos::Center, VPos::Top)
        };
        matrix_area
            .draw(&Text::new(label.as_ref(), (x, y + 8), style))
            .map_err(|error| error.to_string())?;
    }
    let row_font = (cell_height / 1.6).clamp(7.0, 14.0);
    for (row, label) in map.row_labels.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, (rows - row) as f64 - 0.5));
        let style = anchored(
            (FONT, row_font).into_font().color(&BLACK),
            HPos::Right,
            VPos::Center,
        );
        matrix_area
            .draw(&Text::new(label.as_ref(), (x - 8, y), style))
            .map_err(|error| error.to_string())?;
    }
    draw_colour_bar(&bar_area, (low, high))
}

fn anchored<'a>(
    style: impl Into<TextStyle<'a>>,
    horizontal: HPos,
    vertical: VPos,
) -> TextStyle<'a> {
    style.into().pos(Pos::new(horizontal, vertical))
}

/// A vertical strip of the colour map from `low` (bottom) to `high` (top) with value labels on its right.
fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (low, high): (f64, f64),
) -> Result<(), String> {
    let mut bar = ChartBuilder::on(area)
        .margin_top(56)
        .margin_bottom(76)
        .margin_left(8)
        .margin_right(8)
        .set_label_area_size(LabelAreaPosition::Right, 64)
        .build_cartesian_2d(0.0..1.0, low..high)
        .map_err(|error| error.to_string())?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .label_style((FONT, 13))
        .draw()
        .map_err(|error| error.to_string())?;
    let steps = 128;
    let step = (high - low) / steps as f64;
    bar.draw_series((0..steps).map(|index| {
        let bottom = low + index as f64 * step;
        Rectangle::new(
            [(0.0, bottom), (1.0, bottom + step)],
            viridis((index as f64 + 0.5) / steps as f64).filled(),
        )
    }))
    .map_err(|error| error.to_string())?;
    Ok(())
}

/// The colour of `fraction` (clamped to [0, 1]) on the viridis scale.
fn viridis(fraction: f64) -> RGBColor {
    let position = fraction.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let below = (position.floor() as usize).min(VIRIDIS.len() - 2);
    let t = position - below as f64;
    let (a, b) = (VIRIDIS[below], VIRIDIS[below + 1]);
    let mix = |p: u8, q: u8| (p as f64 + t * (q as f64 - p as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn assert_figure(files: &PlotFiles) -> String {
        let png = std::fs::read(&files.png).expect("png written");
        assert_eq!(png[..8], PNG_MAGIC, "{} is not a PNG", files.png.display());
        let svg = std::fs::read_to_string(&files.svg).expect("svg written");
        assert!(
            svg.contains("<svg"),
            "{} is not an SVG",
            files.svg.display()
        );
        svg
    }

    #[test]
    fn line_plot_writes_png_and_svg_with_the_legend() {
        let dir = tempfile::tempdir().unwrap();
        let decay: Vec<(f64, f64)> = (0..16)
            .map(|layer| (layer as f64, 2.0 * 0.8f64.powi(layer)))
            .collect();
        let flat = [(0.0, 1.0), (7.0, f64::NAN), (15.0, 1.0)];
        let curves = [
            Curve {
                name: "graphcast_small",
                points: &decay,
            },
            Curve {
                name: "flat",
                points: &flat,
            },
        ];
        let plot = LinePlot {
            title: "Velocity",
            x_label: "layer",
            y_label: "mean |v_i|",
            curves: &curves,
            integer_x: true,
        };
        let files = line_plot(&dir.path().join("velocity"), &plot).unwrap();
        assert_eq!(files.png, dir.path().join("velocity.png"));
        let svg = assert_figure(&files);
        assert!(
            svg.contains("graphcast_small") && svg.contains("layer"),
            "legend or axis label missing"
        );
        // Layer axes carry whole numbers only (the y axis here has 0.2 steps), and the palette has no yellow.
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|piece| piece.rsplit('>').next())
            .map(str::trim)
            .collect();
        assert!(
            labels.contains(&"14") && labels.contains(&"0.2"),
            "{labels:?}"
        );
        assert!(
            !labels.iter().any(|l| ["0.5", "7.5", "14.0"].contains(l)),
            "{labels:?}"
        );
        assert!(
            !svg.contains("#F0E442") && !svg.contains("#FFFF00"),
            "no yellow line"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|entry| entry.ok())
            .filter(|entry| files::is_temporary(&entry.file_name().to_string_lossy()))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        let nothing = [Curve {
            name: "nan",
            points: &[(f64::NAN, 1.0)],
        }];
        let empty = LinePlot {
            curves: &nothing,
            ..plot
        };
        assert!(matches!(
            line_plot(&dir.path().join("empty"), &empty),
            Err(PlotError::NoPoints { .. })
        ));
    }

    #[test]
    fn heat_map_writes_png_and_svg_containing_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        let rows = ["processor.0", "processor.7", "processor.15"];
        let columns = ["layer_a", "layer_b"];
        let values = [1.0, 0.25, 0.5, f64::NAN, 0.0, 0.75];
        let map = HeatMap {
            title: "CKA",
            row_labels: &rows,
            column_labels: &columns,
            values: &values,
            value_range: None,
        };
        let svg = assert_figure(&heat_map(&dir.path().join("cka"), &map).unwrap());
        for label in rows.iter().chain(&columns) {
            assert!(svg.contains(label), "label {label} missing from the SVG");
        }
        assert!(
            svg.contains("0.25") && svg.contains("nan"),
            "cell annotations missing"
        );
        // Many long column labels turn vertical; they must still be there.
        let label = |model: &str, i: usize| format!("{model}/processor.{i}.resid_post");
        let rows: Vec<String> = (0..16).map(|i| label("a", i)).collect();
        let columns: Vec<String> = (0..16).map(|i| label("b", i)).collect();
        let square: Vec<f64> = (0..256).map(|i| f64::from(i % 17) / 16.0).collect();
        let wide = HeatMap {
            title: "CKA by layer",
            row_labels: &rows,
            column_labels: &columns,
            values: &square,
            value_range: Some((0.0, 1.0)),
        };
        let svg = assert_figure(&heat_map(&dir.path().join("layers"), &wide).unwrap());
        assert!(
            svg.contains("b/processor.15.resid_post"),
            "vertical column label missing"
        );
        let wrong = HeatMap {
            values: &values[..5],
            ..map
        };
        assert!(matches!(
            heat_map(&dir.path().join("bad"), &wrong),
            Err(PlotError::HeatMapShape { .. })
        ));
    }

    #[test]
    fn point_map_writes_png_and_svg_with_its_title() {
        let dir = tempfile::tempdir().unwrap();
        let files = point_map(
            &dir.path().join("map"),
            &PointMap {
                title: "CKNNA by location",
                lat: &[0.0, 45.0, -60.0],
                lon: &[0.0, 200.0, -90.0],
                values: &[0.1, 0.5, f64::NAN],
                value_range: Some((0.0, 1.0)),
            },
        )
        .unwrap();
        let svg = assert_figure(&files);
        assert!(svg.contains("CKNNA by location"));
        assert!(
            point_map(
                &dir.path().join("bad"),
                &PointMap {
                    title: "x",
                    lat: &[0.0],
                    lon: &[0.0, 1.0],
                    values: &[0.0],
                    value_range: None,
                }
            )
            .is_err()
        );
    }

    #[test]
    fn viridis_ends_at_its_published_colours() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(0.5), RGBColor(33, 144, 141));
        assert_eq!(viridis(-3.0), viridis(0.0));
    }
}
