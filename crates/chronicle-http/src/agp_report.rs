//! The printable Ambulatory Glucose Profile (AGP) report: one A4 page laid out like the
//! consensus report (Battelino et al., Diabetes Care 2019) — glucose statistics and targets,
//! time in ranges as a stacked bar, the AGP percentile chart (5/25/50/75/95 by time of day)
//! and daily glucose profiles of the last 14 days — as a PDF with its font embedded (krilla).
//!
//! Every figure printed is the trend API's (`chronicle_domain::trends::glucose_trend`, read
//! through the gate by `api::trends::read_glucose_trend`): this module only lays them out.
//! The daily profiles' curves are individual readings, so they are drawn only for a caller
//! who may see readings; a trends-only caller gets each day's time in range instead.

use crate::api::GlucoseTrendRead;
use chronicle_domain::GlucoseUnit;
use chronicle_domain::trends::{AgpBin, DayBounds, GlucoseBand, GlucoseDay};
use chrono::{DateTime, Utc};
use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use uuid::Uuid;

/// DejaVu Sans (Bitstream Vera licence, `fonts/LICENSE-DejaVu.txt`), subset into each PDF.
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// A4 in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 36.0;
/// The glucose scale of the charts, mg/dL (values above are drawn at the top).
const CHART_MAX_MG_DL: f64 = 350.0;
/// How many days of daily profiles the page holds (the consensus report's two weeks).
const PROFILE_DAYS: usize = 14;
/// Two readings further apart than this are not joined in a daily profile (the longest time
/// one reading stands for, `docs/trends.md`).
const PROFILE_GAP_MINUTES: i64 = 15;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report's font could not be read")]
    Font,
    #[error("the page size is invalid")]
    Page,
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

type Color = (u8, u8, u8);
const BLACK: Color = (0, 0, 0);
const GREY: Color = (120, 120, 120);
const LIGHT_GREY: Color = (225, 225, 225);
const TARGET_GREEN: Color = (220, 240, 220);
const RANGE_LINE: Color = (60, 150, 60);
const BAND_OUTER: Color = (190, 210, 235);
const BAND_INNER: Color = (110, 150, 205);
const MEDIAN: Color = (20, 60, 130);
/// Very low, low, in range, high, very high (the order of `GlucoseBand::ALL`).
const BAND_COLORS: [Color; 5] = [
    (150, 20, 20),
    (230, 60, 50),
    (60, 160, 70),
    (250, 190, 40),
    (240, 130, 20),
];
const BAND_LABELS: [&str; 5] = ["Very low", "Low", "In range", "High", "Very high"];

/// Who and when the report is for, besides the trend itself.
pub struct ReportHeading {
    pub patient_id: Uuid,
    pub unit: GlucoseUnit,
    pub generated_at: DateTime<Utc>,
}

/// Formats an optional figure with one decimal (`–` when there is no data).
fn one_decimal(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}

/// The report as PDF bytes.
pub fn agp_pdf(heading: &ReportHeading, read: &GlucoseTrendRead) -> Result<Vec<u8>, ReportError> {
    let font = Font::new(FONT.into(), 0).ok_or(ReportError::Font)?;
    let mut document = Document::new();
    let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT).ok_or(ReportError::Page)?;
    let mut page = document.start_page_with(settings);
    {
        let mut surface = page.surface();
        let mut canvas = Canvas {
            surface: &mut surface,
            font,
        };
        header(&mut canvas, heading, read);
        statistics(&mut canvas, heading.unit, read);
        time_in_ranges(&mut canvas, heading.unit, read);
        agp_chart(&mut canvas, heading.unit, read);
        daily_profiles(&mut canvas, read);
        let notes = [
            "Figures as in Chronicle's trend API: International Consensus on Time in Range \
             (Battelino et al., Diabetes Care 2019);"
                .to_owned(),
            format!(
                "GMI = 3.31 + 0.02392 × mean glucose in mg/dL (Bergenstal et al. 2018); AGP \
                 bins of {} minutes.",
                bin_minutes(&read.trend.agp)
            ),
        ];
        for (i, note) in notes.iter().enumerate() {
            canvas.text(MARGIN, PAGE_HEIGHT - 30.0 + 9.0 * i as f32, 6.5, GREY, note);
        }
    }
    page.finish();
    document
        .finish()
        .map_err(|e| ReportError::Pdf(format!("{e:?}")))
}

fn bin_minutes(bins: &[AgpBin]) -> u32 {
    match bins {
        [first, second, ..] => second.start_minute - first.start_minute,
        _ => 1440,
    }
}

fn header(c: &mut Canvas, heading: &ReportHeading, read: &GlucoseTrendRead) {
    c.text(
        MARGIN,
        48.0,
        15.0,
        BLACK,
        "AMBULATORY GLUCOSE PROFILE (AGP) REPORT",
    );
    c.text(
        MARGIN,
        64.0,
        8.0,
        GREY,
        &format!(
            "Patient {} · time zone {} · generated {} UTC",
            heading.patient_id,
            read.subject.time_zone.name(),
            heading.generated_at.format("%Y-%m-%d %H:%M")
        ),
    );
    c.rect(MARGIN, 72.0, PAGE_WIDTH - 2.0 * MARGIN, 0.8, BLACK);
}

fn statistics(c: &mut Canvas, unit: GlucoseUnit, read: &GlucoseTrendRead) {
    let s = &read.trend.summary;
    let t = &read.subject.targets;
    let window = &read.window;
    let u = unit.as_str();
    let value = |mg_dl: f64| match unit {
        GlucoseUnit::MgDl => format!("{mg_dl:.0}"),
        GlucoseUnit::MmolL => format!("{:.1}", unit.from_mg_dl(mg_dl)),
    };
    let wear_percent = (s.calendar_days > 0)
        .then(|| s.totals.days_with_cgm as f64 / s.calendar_days as f64 * 100.0);
    let sufficiency = if s.sufficient() {
        "yes".to_owned()
    } else {
        let reasons: Vec<&str> = s.insufficient.iter().map(|r| r.as_str()).collect();
        format!("no ({})", reasons.join(", "))
    };
    let lines = [
        format!(
            "Period: {} – {} ({} days)",
            window.first_date(),
            window.last_date(),
            s.calendar_days
        ),
        format!(
            "% Time CGM is active: {}%",
            one_decimal(s.cgm_active_percent)
        ),
        format!(
            "Days of sensor wear: {} of {} ({}%)",
            s.totals.days_with_cgm,
            s.calendar_days,
            one_decimal(wear_percent)
        ),
        format!("Readings: {}", s.totals.readings),
        format!(
            "Mean glucose: {} {u}",
            one_decimal(s.mean_mg_dl.map(|v| unit.from_mg_dl(v)))
        ),
        format!(
            "Glucose management indicator (GMI): {}%",
            one_decimal(s.gmi_percent)
        ),
        format!(
            "Glucose variability (CV): {}%   (target ≤ {}%)",
            one_decimal(s.cv_percent),
            t.cv_max_percent
        ),
        format!("Enough data (14 days, CGM active 70 %): {sufficiency}"),
    ];
    c.text(MARGIN, 90.0, 10.0, BLACK, "GLUCOSE STATISTICS AND TARGETS");
    let mut y = 106.0;
    for line in &lines {
        c.text(MARGIN, y, 8.5, BLACK, line);
        y += 12.5;
    }
    y += 4.0;
    c.text(
        MARGIN,
        y,
        8.5,
        BLACK,
        &format!("Targets ({}):", t.preset.as_str()),
    );
    let targets = [
        format!(
            "Time in range {}–{} {u}: greater than {}%",
            value(t.range_low_mg_dl),
            value(t.range_high_mg_dl),
            t.time_in_range_min_percent
        ),
        format!(
            "Below {} {u}: less than {}%",
            value(t.range_low_mg_dl),
            t.time_below_range_max_percent
        ),
        format!(
            "Below {} {u}: less than {}%",
            value(54.0),
            t.time_below_54_max_percent
        ),
        format!(
            "Above {} {u}: less than {}%",
            value(t.range_high_mg_dl),
            t.time_above_range_max_percent
        ),
        format!(
            "Above {} {u}: less than {}%",
            value(250.0),
            t.time_above_250_max_percent
        ),
    ];
    for line in &targets {
        y += 11.5;
        c.text(MARGIN + 10.0, y, 8.0, BLACK, line);
    }
}

/// The consensus bands' limits as the consensus words them in each unit (very low first).
fn band_limits(unit: GlucoseUnit) -> [&'static str; 5] {
    match unit {
        GlucoseUnit::MgDl => [
            "below 54 mg/dL",
            "54–69 mg/dL",
            "70–180 mg/dL",
            "181–250 mg/dL",
            "above 250 mg/dL",
        ],
        GlucoseUnit::MmolL => [
            "below 3.0 mmol/L",
            "3.0–3.8 mmol/L",
            "3.9–10.0 mmol/L",
            "10.1–13.9 mmol/L",
            "above 13.9 mmol/L",
        ],
    }
}

fn time_in_ranges(c: &mut Canvas, unit: GlucoseUnit, read: &GlucoseTrendRead) {
    let s = &read.trend.summary;
    let x = 340.0;
    c.text(x, 90.0, 10.0, BLACK, "TIME IN RANGES");
    let (top, height, width) = (104.0, 170.0, 34.0);
    c.rect(x, top, width, height, LIGHT_GREY);
    if let Some(percent) = s.band_percent {
        // Very high on top, very low at the bottom, as the consensus report stacks them.
        let mut y = top;
        for band in GlucoseBand::ALL.iter().rev() {
            let h = (percent[band.index()] / 100.0) as f32 * height;
            c.rect(x, y, width, h, BAND_COLORS[band.index()]);
            y += h;
        }
    }
    let limits = band_limits(unit);
    let mut y = top + 10.0;
    for band in GlucoseBand::ALL.iter().rev() {
        let i = band.index();
        c.rect(x + width + 8.0, y - 7.0, 7.0, 7.0, BAND_COLORS[i]);
        c.text(
            x + width + 19.0,
            y,
            8.5,
            BLACK,
            &format!(
                "{} ({}): {}%",
                BAND_LABELS[i],
                limits[i],
                one_decimal(s.percent_of(*band))
            ),
        );
        y += 26.0;
    }
    c.text(
        x + width + 19.0,
        y,
        8.0,
        GREY,
        &format!(
            "Below 70: {}%   Above 180: {}%",
            one_decimal(s.below_70_percent()),
            one_decimal(s.above_180_percent())
        ),
    );
    c.text(
        x + width + 19.0,
        y + 11.0,
        8.0,
        GREY,
        &format!(
            "In the patient's target range: {}%",
            one_decimal(s.in_target_percent())
        ),
    );
}

/// A chart's frame: where values and times of day land on the page.
struct Frame {
    left: f32,
    top: f32,
    width: f32,
    height: f32,
}

impl Frame {
    fn x(&self, minute_of_day: f64) -> f32 {
        self.left + (minute_of_day / 1440.0).clamp(0.0, 1.0) as f32 * self.width
    }

    fn y(&self, mg_dl: f64) -> f32 {
        self.top + self.height - (mg_dl / CHART_MAX_MG_DL).clamp(0.0, 1.0) as f32 * self.height
    }

    /// The chart's background: the patient's target range shaded, with its limits drawn.
    fn background(&self, c: &mut Canvas, read: &GlucoseTrendRead) {
        c.rect(
            self.left,
            self.top,
            self.width,
            self.height,
            (250, 250, 250),
        );
        let (low, high) = (
            read.subject.targets.range_low_mg_dl,
            read.subject.targets.range_high_mg_dl,
        );
        c.rect(
            self.left,
            self.y(high),
            self.width,
            self.y(low) - self.y(high),
            TARGET_GREEN,
        );
        for limit in [low, high] {
            c.line(
                &[
                    (self.left, self.y(limit)),
                    (self.left + self.width, self.y(limit)),
                ],
                RANGE_LINE,
                0.6,
            );
        }
    }
}

fn agp_chart(c: &mut Canvas, unit: GlucoseUnit, read: &GlucoseTrendRead) {
    c.text(
        MARGIN,
        300.0,
        10.0,
        BLACK,
        "AMBULATORY GLUCOSE PROFILE (AGP)",
    );
    c.text(
        MARGIN + 215.0,
        300.0,
        7.5,
        GREY,
        "5th–95th percentile (light), 25th–75th (dark), median (line); target range shaded",
    );
    let frame = Frame {
        left: MARGIN + 34.0,
        top: 310.0,
        width: PAGE_WIDTH - 2.0 * MARGIN - 40.0,
        height: 190.0,
    };
    frame.background(c, read);
    for mg_dl in [54.0, 70.0, 180.0, 250.0, 350.0] {
        c.line(
            &[
                (frame.left, frame.y(mg_dl)),
                (frame.left + frame.width, frame.y(mg_dl)),
            ],
            LIGHT_GREY,
            0.4,
        );
        let label = match unit {
            GlucoseUnit::MgDl => format!("{mg_dl:.0}"),
            GlucoseUnit::MmolL => format!("{:.1}", unit.from_mg_dl(mg_dl)),
        };
        c.text(MARGIN, frame.y(mg_dl) + 3.0, 7.0, GREY, &label);
    }
    c.text(MARGIN, frame.top + 13.0, 6.5, GREY, unit.as_str());
    for hour in (0..=24).step_by(3) {
        let x = frame.x(f64::from(hour) * 60.0);
        c.line(
            &[(x, frame.top), (x, frame.top + frame.height)],
            LIGHT_GREY,
            0.4,
        );
        c.text(
            x - 10.0,
            frame.top + frame.height + 10.0,
            7.0,
            GREY,
            &format!("{:02}:00", hour % 24),
        );
    }
    let bins = &read.trend.agp;
    let width = f64::from(bin_minutes(bins));
    // Runs of bins with readings; an empty bin breaks the curves.
    for run in bins.split(|b| b.percentiles.is_none()) {
        let points: Vec<(f64, [f64; 5])> = run
            .iter()
            .filter_map(|b| {
                b.percentiles
                    .map(|p| (f64::from(b.start_minute) + width / 2.0, p))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        for (low, high, color) in [(0, 4, BAND_OUTER), (1, 3, BAND_INNER)] {
            let mut outline: Vec<(f32, f32)> = points
                .iter()
                .map(|(m, p)| (frame.x(*m), frame.y(p[high])))
                .collect();
            outline.extend(
                points
                    .iter()
                    .rev()
                    .map(|(m, p)| (frame.x(*m), frame.y(p[low]))),
            );
            c.polygon(&outline, color);
        }
        let median: Vec<(f32, f32)> = points
            .iter()
            .map(|(m, p)| (frame.x(*m), frame.y(p[2])))
            .collect();
        c.line(&median, MEDIAN, 1.4);
    }
}

fn daily_profiles(c: &mut Canvas, read: &GlucoseTrendRead) {
    c.text(MARGIN, 536.0, 10.0, BLACK, "DAILY GLUCOSE PROFILES");
    c.text(
        MARGIN + 150.0,
        536.0,
        7.5,
        GREY,
        if read.individual {
            "each day midnight to midnight; target range shaded; time in range below each day"
        } else {
            "curves need access to readings (this grant shows trends only): time in range per day"
        },
    );
    let shown: Vec<&DayBounds> = read
        .window
        .days
        .iter()
        .rev()
        .take(PROFILE_DAYS)
        .rev()
        .collect();
    let columns = 7;
    let gap = 4.0;
    let width = (PAGE_WIDTH - 2.0 * MARGIN - gap * (columns as f32 - 1.0)) / columns as f32;
    let height = 88.0;
    for (i, bounds) in shown.iter().enumerate() {
        let (row, column) = (i / columns, i % columns);
        let frame = Frame {
            left: MARGIN + column as f32 * (width + gap),
            top: 556.0 + row as f32 * (height + 34.0),
            width,
            height,
        };
        c.text(
            frame.left,
            frame.top - 3.0,
            7.0,
            BLACK,
            &bounds.date.format("%a %Y-%m-%d").to_string(),
        );
        frame.background(c, read);
        if read.individual
            && let Some(day) = read.days.iter().find(|d| d.date == bounds.date)
        {
            profile_curve(c, &frame, bounds, day);
        }
        let in_range = read
            .trend
            .daily
            .iter()
            .find(|(b, _)| b.date == bounds.date)
            .and_then(|(_, s)| s.percent_of(GlucoseBand::InRange));
        c.text(
            frame.left,
            frame.top + frame.height + 10.0,
            7.0,
            GREY,
            &format!("TIR {}%", one_decimal(in_range)),
        );
    }
}

/// One day's readings as a line, broken where readings are more than the gap apart.
fn profile_curve(c: &mut Canvas, frame: &Frame, bounds: &DayBounds, day: &GlucoseDay) {
    let day_minutes = (bounds.end - bounds.start).num_seconds() as f64 / 60.0;
    let x = |at: DateTime<Utc>| {
        frame.x((at - bounds.start).num_seconds() as f64 / 60.0 / day_minutes * 1440.0)
    };
    let mut run: Vec<(f32, f32)> = Vec::new();
    let mut previous: Option<DateTime<Utc>> = None;
    for sample in &day.samples {
        if previous.is_some_and(|p| (sample.at - p).num_minutes() > PROFILE_GAP_MINUTES) {
            c.line(&run, MEDIAN, 0.7);
            run.clear();
        }
        run.push((x(sample.at), frame.y(sample.mg_dl)));
        previous = Some(sample.at);
    }
    c.line(&run, MEDIAN, 0.7);
}

/// A path from the first point through the others.
fn through(points: &[(f32, f32)]) -> PathBuilder {
    let mut builder = PathBuilder::new();
    for (i, (x, y)) in points.iter().enumerate() {
        if i == 0 {
            builder.move_to(*x, *y);
        } else {
            builder.line_to(*x, *y);
        }
    }
    builder
}

/// Drawing on one page: text in the embedded font, filled rectangles and polygons, lines.
struct Canvas<'a, 'b> {
    surface: &'a mut Surface<'b>,
    font: Font,
}

fn paint(color: Color) -> krilla::paint::Paint {
    rgb::Color::new(color.0, color.1, color.2).into()
}

impl Canvas<'_, '_> {
    fn text(&mut self, x: f32, y: f32, size: f32, color: Color, text: &str) {
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(Fill {
            paint: paint(color),
            opacity: NormalizedF32::ONE,
            rule: Default::default(),
        }));
        self.surface.draw_text(
            Point::from_xy(x, y),
            self.font.clone(),
            size,
            text,
            false,
            TextDirection::Auto,
        );
    }

    fn fill(&mut self, path: Option<krilla::geom::Path>, color: Color) {
        let Some(path) = path else { return };
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(Fill {
            paint: paint(color),
            opacity: NormalizedF32::ONE,
            rule: Default::default(),
        }));
        self.surface.draw_path(&path);
    }

    fn rect(&mut self, x: f32, y: f32, width: f32, height: f32, color: Color) {
        let Some(rect) = Rect::from_xywh(x, y, width, height) else {
            return;
        };
        let mut builder = PathBuilder::new();
        builder.push_rect(rect);
        self.fill(builder.finish(), color);
    }

    fn polygon(&mut self, points: &[(f32, f32)], color: Color) {
        let mut builder = through(points);
        builder.close();
        self.fill(builder.finish(), color);
    }

    fn line(&mut self, points: &[(f32, f32)], color: Color, width: f32) {
        if points.len() < 2 {
            return;
        }
        let Some(path) = through(points).finish() else {
            return;
        };
        self.surface.set_fill(None);
        self.surface.set_stroke(Some(Stroke {
            paint: paint(color),
            width,
            ..Default::default()
        }));
        self.surface.draw_path(&path);
        self.surface.set_stroke(None);
    }
}
