//! An evaluation as one self-contained HTML page (no scripts, no outside resources): the
//! metrics (micro, macro, per type), the error breakdown, an inline SVG chart, and a sample
//! of each kind of error shown in its sentence with the evidence behind the prediction.

use std::fmt::Write as _;

use crate::corpus::{Corpus, Entity, Sentence};
use crate::decode::Span;
use crate::eval::{EvalReport, Judged, Outcome, Prf, Scores};

/// What the page shows.
pub struct ReportInput<'a> {
    /// The page's heading (what was evaluated on what).
    pub title: &'a str,
    /// Lines of provenance (profile, data, checksum, context), as (name, value).
    pub about: &'a [(&'a str, String)],
    pub report: &'a EvalReport,
    /// The gold corpus, and the predicted spans of each of its documents.
    pub gold: &'a Corpus,
    pub spans: &'a [Vec<Span>],
    /// Every prediction and miss, judged ([`crate::judge_corpus`]).
    pub judged: &'a [Judged],
    /// Errors shown per kind (evenly spread over all of that kind).
    pub per_kind: usize,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;\
padding:0 1rem;color:#1d1d1f}table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{padding:.2rem .6rem;\
border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}\
tr.total td{font-weight:600}.case{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;\
margin:.5rem 0}.sent{line-height:1.9}.gold{text-decoration:underline 2px #188038;text-underline-offset:4px}\
.pred{background:#fde293;border-radius:3px}.muted{color:#5f6368}.ev{font-size:.85rem;margin:.3rem 0 0}\
.ev td,.ev th{padding:.1rem .5rem}svg text{font-size:12px;font-family:system-ui,sans-serif}";

/// The page.
pub fn html_report(input: &ReportInput<'_>) -> String {
    let mut out = String::new();
    let title = esc(input.title);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
<style>{STYLE}</style></head><body><h1>{title}</h1><table>"
    );
    for (name, value) in input.about {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(value)
        );
    }
    out += "</table>";
    for (name, scores) in [
        ("Strict (seqeval, IOB2)", &input.report.strict),
        ("conlleval", &input.report.conlleval),
    ] {
        let _ = write!(out, "<h2>{name}</h2>{}", metrics_table(scores));
    }
    out += "<h2>F1, precision and recall per type (strict)</h2>";
    out += &chart(&input.report.strict);
    out += &errors_section(input);
    out += "</body></html>\n";
    out
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn metrics_table(scores: &Scores) -> String {
    let mut out = String::from(
        "<table><tr><th>type</th><th>precision</th><th>recall</th><th>F1</th><th>correct</th>\
<th>predicted</th><th>gold</th></tr>",
    );
    let row = |out: &mut String, name: &str, p: &Prf, class: &str| {
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
<td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            100.0 * p.precision,
            100.0 * p.recall,
            100.0 * p.f1,
            p.correct,
            p.predicted,
            p.support
        );
    };
    for (label, prf) in &scores.per_type {
        row(&mut out, label, prf, "");
    }
    row(&mut out, "micro", &scores.micro, "total");
    row(&mut out, "macro", &scores.macro_, "total");
    out + "</table>"
}

/// Grouped bars: precision, recall and F1 for each type and the micro average.
fn chart(scores: &Scores) -> String {
    let groups: Vec<(&str, &Prf)> = scores
        .per_type
        .iter()
        .map(|(l, p)| (l.as_str(), p))
        .chain([("micro", &scores.micro)])
        .collect();
    let series = [
        ("precision", "#8ab4f8"),
        ("recall", "#fdd663"),
        ("F1", "#188038"),
    ];
    let (left, top, height, group_w, bar_w) = (40.0, 10.0, 200.0, 110.0, 26.0);
    let width = left + group_w * groups.len() as f64 + 20.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{}\" \
aria-label=\"Precision, recall and F1 per type\">",
        top + height + 50.0
    );
    for tick in [0, 25, 50, 75, 100] {
        let y = top + height * (1.0 - tick as f64 / 100.0);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/>\
<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{tick}</text>",
            width - 10.0,
            left - 6.0,
            y + 4.0
        );
    }
    for (g, (name, prf)) in groups.iter().enumerate() {
        let x0 = left + group_w * g as f64 + 10.0;
        for (k, ((series_name, color), value)) in series
            .iter()
            .zip([prf.precision, prf.recall, prf.f1])
            .enumerate()
        {
            let h = height * value;
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{}\" width=\"{bar_w}\" height=\"{h}\" fill=\"{color}\">\
<title>{} {series_name}: {:.1}</title></rect>",
                x0 + bar_w * k as f64,
                top + height - h,
                esc(name),
                100.0 * value
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x0 + 1.5 * bar_w,
            top + height + 16.0,
            esc(name)
        );
    }
    for (k, (name, color)) in series.iter().enumerate() {
        let x = left + 90.0 * k as f64;
        let y = top + height + 34.0;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
<text x=\"{}\" y=\"{}\">{name}</text>",
            y - 10.0,
            x + 16.0,
            y
        );
    }
    svg + "</svg>"
}

fn errors_section(input: &ReportInput<'_>) -> String {
    let e = &input.report.errors;
    let mut out = String::from(
        "<h2>Error breakdown (strict)</h2><table><tr><th>outcome</th><th>entities</th></tr>",
    );
    for (name, n) in [
        ("correct", e.correct),
        ("missed (gold entity, no overlapping prediction)", e.missed),
        (
            "spurious (prediction overlapping no gold entity)",
            e.spurious,
        ),
        ("boundary (right type, wrong span)", e.boundary),
        ("type (right span, wrong type)", e.type_),
        ("boundary + type", e.boundary_type),
    ] {
        let _ = write!(out, "<tr><td>{name}</td><td>{n}</td></tr>");
    }
    out += "</table>";
    // Sentence index over the corpus → (document, sentence in it).
    let place: Vec<(usize, usize)> = input
        .gold
        .documents
        .iter()
        .enumerate()
        .flat_map(|(d, doc)| (0..doc.sentences.len()).map(move |s| (d, s)))
        .collect();
    let kinds: [(&str, &[Outcome]); 4] = [
        ("Missed", &[Outcome::Missed]),
        ("Spurious", &[Outcome::Spurious]),
        ("Boundary errors", &[Outcome::Boundary]),
        ("Type errors", &[Outcome::Type, Outcome::BoundaryType]),
    ];
    for (name, outcomes) in kinds {
        let cases: Vec<&Judged> = input
            .judged
            .iter()
            .filter(|j| outcomes.contains(&j.outcome))
            .collect();
        let shown = input.per_kind.min(cases.len());
        let _ = write!(
            out,
            "<h2>{name}: {shown} of {}</h2><p class=\"muted\">Gold entity <span class=\"gold\">underlined</span>, \
prediction <span class=\"pred\">highlighted</span>.</p>",
            cases.len()
        );
        for i in 0..shown {
            // Evenly spread, so the sample is not just the first documents.
            out += &case(input, &place, cases[i * cases.len() / shown]);
        }
    }
    out
}

fn case(input: &ReportInput<'_>, place: &[(usize, usize)], judged: &Judged) -> String {
    let (d, s) = place[judged.sentence];
    let document = &input.gold.documents[d];
    let sentence = &document.sentences[s];
    let mut out = format!(
        "<div class=\"case\"><div class=\"sent\">{}</div><div>",
        marked_sentence(&document.text, sentence, judged)
    );
    let text_of = |e: &Entity| {
        let words: Vec<&str> = sentence.words[e.start..e.end]
            .iter()
            .map(|w| w.text.as_str())
            .collect();
        esc(&words.join(" "))
    };
    if let Some(g) = &judged.gold {
        let _ = write!(out, "gold <b>{}</b> “{}”", esc(&g.label), text_of(g));
    }
    match &judged.predicted {
        None => out += " · nothing predicted: no word's vote reached the threshold",
        Some(p) => {
            let span = input.spans[d]
                .iter()
                .find(|x| x.sentence == s && x.word_start == p.start && x.word_end == p.end);
            if judged.gold.is_some() {
                out += " · ";
            }
            let _ = write!(out, "predicted <b>{}</b> “{}”", esc(&p.label), text_of(p));
            if let Some(span) = span {
                let _ = write!(
                    out,
                    " score {:.2}<table class=\"ev\"><tr><th>feature</th><th>activation</th>\
<th>precision for {}</th></tr>",
                    span.score,
                    esc(&span.label)
                );
                for ev in &span.evidence {
                    let _ = write!(
                        out,
                        "<tr><td>#{}</td><td>{:.1}</td><td>{:.2}",
                        ev.feature, ev.activation, ev.precision
                    );
                    // Naive-Bayes evidence: its log-odds for the span's tags against O.
                    if let Some(log_odds) = ev.log_odds {
                        let _ = write!(out, " (log-odds +{log_odds:.1})");
                    }
                    out += "</td></tr>";
                }
                out += "</table>";
            }
        }
    }
    out + "</div></div>"
}

/// The sentence's text with the judged entities' words marked.
fn marked_sentence(text: &str, sentence: &Sentence, judged: &Judged) -> String {
    let inside =
        |e: &Option<Entity>, w: usize| e.as_ref().is_some_and(|e| (e.start..e.end).contains(&w));
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut at = sentence.words.first().map_or(0, |w| w.start);
    for (w, word) in sentence.words.iter().enumerate() {
        out += &esc(&chars[at..word.start].iter().collect::<String>());
        let mut classes = Vec::new();
        if inside(&judged.gold, w) {
            classes.push("gold");
        }
        if inside(&judged.predicted, w) {
            classes.push("pred");
        }
        let word_text = esc(&word.text);
        if classes.is_empty() {
            out += &word_text;
        } else {
            let _ = write!(
                out,
                "<span class=\"{}\">{word_text}</span>",
                classes.join(" ")
            );
        }
        at = word.end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Evidence;
    use crate::eval::{evaluate_corpus, judge_corpus};
    use crate::test_support::conll;

    #[test]
    fn the_page_shows_metrics_a_chart_and_each_kind_of_error_with_evidence() {
        let gold = conll(
            "-DOCSTART- O\n\nAngela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n\n\
New B-LOC\nYork I-LOC\nis O\nbig O\n",
        );
        let span = |sentence, word_start, word_end, label: &str, start, end| Span {
            sentence,
            word_start,
            word_end,
            start,
            end,
            label: label.into(),
            score: 0.8,
            evidence: vec![Evidence {
                feature: 42,
                activation: 120.0,
                precision: 0.9,
                log_odds: None,
            }],
        };
        // Type error on "Paris", boundary error on "York", spurious "visited"; "Angela
        // Merkel" missed.
        let spans = vec![vec![
            span(0, 2, 3, "ORG", 14, 21),
            span(0, 3, 4, "ORG", 22, 27),
            span(1, 1, 2, "LOC", 32, 36),
        ]];
        let predicted = crate::predicted_corpus(&gold, &spans);
        let report = evaluate_corpus(&gold, &predicted).unwrap();
        let judged = judge_corpus(&gold, &predicted).unwrap();
        let outcomes: Vec<Outcome> = judged.iter().map(|j| j.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Spurious,
                Outcome::Type,
                Outcome::Boundary,
                Outcome::Missed
            ]
        );
        let html = html_report(&ReportInput {
            title: "p on <test>",
            about: &[("data", "test.conll".into())],
            report: &report,
            gold: &gold,
            spans: &spans,
            judged: &judged,
            per_kind: 5,
        });
        assert!(html.contains("<title>p on &lt;test&gt;</title>"), "{html}");
        assert!(html.contains("<svg"));
        for heading in [
            "Missed: 1 of 1",
            "Spurious: 1 of 1",
            "Boundary errors: 1 of 1",
            "Type errors: 1 of 1",
        ] {
            assert!(html.contains(heading), "{heading}");
        }
        assert!(
            html.contains("<span class=\"gold pred\">Paris</span>"),
            "{html}"
        );
        assert!(html.contains("<td>#42</td><td>120.0</td><td>0.90</td>"));
        assert!(html.contains("nothing predicted"));
        assert!(!html.contains("<script"));
    }
}
