//! The live screen: the snapshot's tables drawn with ratatui, counters on
//! the left, backends and plugins on the right.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table as Widget};

use super::snapshot::Snapshot;
use super::text::{self, Table};

/// Lines a table takes: borders, header and rows (or the "empty" line).
fn height(t: &Table) -> u16 {
    let body = if t.rows.is_empty() {
        1
    } else {
        1 + t.rows.len()
    };
    u16::try_from(body + 2).unwrap_or(u16::MAX)
}

/// Colour for cells that say something is wrong (or right).
fn style_for(cell: &str) -> Style {
    match cell {
        "sick" | "open" | "quarantined" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        "healthy" | "ok" => Style::new().fg(Color::Green),
        _ => Style::new(),
    }
}

fn draw_table(frame: &mut Frame<'_>, area: Rect, t: &Table) {
    let block = Block::bordered().title(Line::from(t.title).bold());
    if t.rows.is_empty() {
        frame.render_widget(Paragraph::new(format!("({})", t.empty)).block(block), area);
        return;
    }
    let cols = 1 + t.columns.len();
    let widths: Vec<Constraint> = (0..cols)
        .map(|i| {
            let cells = t
                .rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count());
            let header = if i == 0 { 0 } else { t.columns[i - 1].len() };
            let w = cells.chain([header]).max().unwrap_or(0);
            Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX))
        })
        .collect();
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let header = Row::new(
        std::iter::once(Cell::from("")).chain(t.columns.iter().map(|c| right(c.to_string()))),
    )
    .style(Style::new().add_modifier(Modifier::UNDERLINED));
    let rows = t.rows.iter().map(|r| {
        Row::new(r.iter().enumerate().map(|(i, c)| {
            let cell = if i == 0 {
                Cell::from(c.clone())
            } else {
                right(c.clone())
            };
            cell.style(style_for(c))
        }))
    });
    frame.render_widget(
        Widget::new(rows, widths)
            .header(header)
            .column_spacing(2)
            .block(block),
        area,
    );
}

/// Stack tables top to bottom in `area`.
fn draw_column(frame: &mut Frame<'_>, area: Rect, tables: &[Table], extra: Option<(&str, String)>) {
    let mut constraints: Vec<Constraint> = tables
        .iter()
        .map(|t| Constraint::Length(height(t)))
        .collect();
    if extra.is_some() {
        constraints.push(Constraint::Length(3));
    }
    constraints.push(Constraint::Min(0));
    let areas = Layout::vertical(constraints).split(area);
    for (t, a) in tables.iter().zip(areas.iter()) {
        draw_table(frame, *a, t);
    }
    if let Some((title, line)) = extra {
        let block = Block::bordered().title(Line::from(title).bold());
        frame.render_widget(Paragraph::new(line).block(block), areas[tables.len()]);
    }
}

/// Draw one frame: heading, tables, and the last poll error if the
/// latest poll failed (the numbers shown are then the last good ones).
pub fn draw(frame: &mut Frame<'_>, s: &Snapshot, admin: &str, error: Option<&str>) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(text::heading(s, admin)).bold(), top);
    let status = match error {
        Some(e) => Line::from(format!("poll failed, showing the last good one: {e}"))
            .style(Style::new().fg(Color::Red)),
        None => Line::from("q quits"),
    };
    frame.render_widget(Paragraph::new(status), bottom);
    let mut tables = text::tables(s);
    // requests, responses | backends, fetch failures, plugins
    let right = tables.split_off(2);
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
    draw_column(
        frame,
        left_area,
        &tables,
        Some(("cache", text::cache_line(s))),
    );
    draw_column(frame, right_area, &right, None);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::super::api::{BackendStatus, Backends, Poll, Status};
    use super::super::prom::Metrics;
    use super::*;

    #[test]
    fn the_screen_shows_requests_backends_and_errors() {
        let poll = Poll {
            at: Instant::now(),
            metrics: Metrics::parse(
                "lacquer_requests_total{state=\"hit\"} 42\n\
                 lacquer_fetch_failures_total{backend=\"app\",kind=\"connect-refused\"} 3\n",
            )
            .unwrap(),
            status: Status {
                version: "1.0.0".into(),
                uptime_s: 5,
                ..Default::default()
            },
            backends: Backends {
                backends: vec![BackendStatus {
                    name: "app".into(),
                    healthy: false,
                    forced: "sick".into(),
                    circuit_open: false,
                }],
            },
        };
        let s = Snapshot::between(&poll, &poll);
        assert_eq!(s.interval, Duration::ZERO);
        let mut term = Terminal::new(TestBackend::new(140, 30)).unwrap();
        term.draw(|f| draw(f, &s, "http://a:1", Some("refused")))
            .unwrap();
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        for want in [
            "lacquer 1.0.0",
            "hit",
            "42",
            "sick",
            "connect-refused",
            "poll failed",
            "refused",
            "cache",
        ] {
            assert!(screen.contains(want), "{want:?} missing from the screen");
        }
    }
}
