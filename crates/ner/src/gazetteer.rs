//! Gazetteers: type lexicons assembled from the name lists that registry packages ship
//! (`saener lexicon build`).
//!
//! A **source file** (`lexicons/gazetteers.py` writes one per package) is JSONL: a first
//! line that says where the names come from (`package`, `version`, `license`, `data`,
//! `kinds`), then one `{"kind", "name"}` per name, `kind` being the package's own category
//! (`city`, `first_name`, `drug`). A **type map** (TOML) says which `package:kind` sources
//! make each entity type, and optionally which hand-written lexicons (`seeds`) join them.
//! [`build`] merges them under the rules below, and the result is written as a JSONL
//! lexicon that records every name's source and, first, every source's version and licence
//! ([`Gazetteer::write_jsonl`]; [`crate::Lexicon::load`] reads it).
//!
//! **Rules**, in order, each counted per type in the [`Manifest`]:
//! 1. *Shape*: a name is dropped if it has fewer than two characters, is lower-case with
//!    fewer than four (`ca`, `ace`: abbreviations that are mostly words), has more than
//!    `max_words` words, or contains ", " (an inverted heading such as "inhibitor, tnf",
//!    which running text never contains).
//! 2. *Case variants*: for a type with `case_variants = true` (biomedical terms, which
//!    lists capitalise and text does not, or the reverse), a name whose second character is
//!    lower-case also gets the variant with its first letter's case flipped.
//! 3. *Common words*: a single-word name whose lower-case form is a frequent English word
//!    (in the common-word list at Zipf ≥ `max_zipf`) is dropped ("Will", "May", "Bill",
//!    "pain"), unless its source is in the type's `keep_common` (closed lists such as
//!    countries, whose capitalised homographs, "China", "Turkey", are the entity).
//! 4. *Ambiguity*: a name that two types list is dropped from both ("Jordan" a first name
//!    and a country); the matcher would never match it anyway.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Lexicon, Result};

/// Where a source file's names come from: its first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub package: String,
    pub version: String,
    pub license: String,
    /// What the names are (the data's own origin and licence, how they were chosen).
    pub data: String,
    /// Kind → what it holds; the common-word list has none.
    #[serde(default)]
    pub kinds: BTreeMap<String, String>,
}

/// One package's names: [`Provenance`] and (kind, name) pairs.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub provenance: Provenance,
    pub names: Vec<(String, String)>,
}

/// Frequent English words (lower-case) with their Zipf frequency, for the common-word rule.
#[derive(Debug, Clone)]
pub struct CommonWords {
    pub provenance: Provenance,
    pub zipf: HashMap<String, f64>,
}

/// The common-word list's file name in a source folder ([`read_sources`] skips it).
pub const COMMON_WORDS: &str = "common_words.jsonl";

/// Which sources make an entity type (one table of the type map).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSpec {
    /// `package:kind` names of source-file lists.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Hand-written TOML lexicons (paths relative to the type map) whose list of the same
    /// type joins the sources.
    #[serde(default)]
    pub seeds: Vec<PathBuf>,
    /// Sources exempt from the common-word rule.
    #[serde(default)]
    pub keep_common: Vec<String>,
    /// Add each name with its first letter's case flipped (rule 2).
    #[serde(default)]
    pub case_variants: bool,
}

/// Type name → how it is built, read from TOML.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeMap {
    pub types: BTreeMap<String, TypeSpec>,
    /// The map's file: errors name it, and its folder is where relative seed paths start.
    pub path: PathBuf,
}

/// The rules' parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Rule 3's threshold: single-word names whose lower-case form is at least this
    /// frequent are dropped.
    pub max_zipf: f64,
    /// Rule 1's longest name, in words.
    pub max_words: usize,
}

impl Default for BuildOptions {
    /// Zipf 5 is about the 3,000 most frequent English words ("will", "may", "mark",
    /// "cancer" is 4.9); chosen before any evaluation, with no benchmark read.
    fn default() -> Self {
        BuildOptions {
            max_zipf: 5.0,
            max_words: 8,
        }
    }
}

/// Per type: names kept from each source and names each rule dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TypeCounts {
    pub names: usize,
    /// Names kept per source (`package:kind` or a seed file), before the ambiguity rule; a
    /// name that several sources of the type give counts for the first in the map's order.
    pub sources: BTreeMap<String, usize>,
    pub dropped_shape: usize,
    pub dropped_common: usize,
    pub dropped_ambiguous: usize,
}

/// What a build read and kept: committed beside the type map when the lexicon is too large.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    pub sources: Vec<Provenance>,
    pub common_words: Option<Provenance>,
    pub max_zipf: f64,
    pub max_words: usize,
    pub types: BTreeMap<String, TypeCounts>,
}

/// A built lexicon: per type, each name and the source that gave it first.
#[derive(Debug, Clone)]
pub struct Gazetteer {
    pub types: BTreeMap<String, Vec<(String, String)>>,
    pub manifest: Manifest,
}

/// One line of a JSONL lexicon: a source's provenance or a name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum LexiconLine {
    Name {
        #[serde(rename = "type")]
        label: String,
        name: String,
        #[serde(default)]
        source: Option<String>,
    },
    Source {
        source: Provenance,
    },
}

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        file: path.display().to_string(),
        source,
    })
}

/// The JSON lines of a file (blank lines skipped), each with its 1-based number.
fn json_lines<'a>(
    text: &'a str,
    file: &'a str,
) -> impl Iterator<Item = Result<(usize, serde_json::Value)>> + 'a {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(move |(i, line)| {
            serde_json::from_str(line)
                .map(|v| (i + 1, v))
                .map_err(|e| Error::Json {
                    file: file.to_string(),
                    line: i + 1,
                    message: e.to_string(),
                })
        })
}

/// Deserialises `value` (line `line` of `file`) as `T`, naming `what` in the error.
fn field<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    file: &str,
    line: usize,
    what: &str,
    expected: &str,
) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Field {
        file: file.to_string(),
        line,
        field: what.to_string(),
        expected: expected.to_string(),
        found: e.to_string(),
    })
}

impl SourceFile {
    /// Reads one source file (see the [module docs](self)).
    pub fn load(path: &Path) -> Result<SourceFile> {
        let file = path.display().to_string();
        let text = read_to_string(path)?;
        let mut lines = json_lines(&text, &file);
        let Some(first) = lines.next() else {
            return Err(Error::Field {
                file: file.clone(),
                line: 1,
                field: "provenance".into(),
                expected:
                    "a first line {\"package\", \"version\", \"license\", \"data\", \"kinds\"}"
                        .into(),
                found: "an empty file".into(),
            });
        };
        let (line, value) = first?;
        let provenance: Provenance = field(
            value,
            &file,
            line,
            "provenance",
            "{\"package\", \"version\", \"license\", \"data\", \"kinds\"}",
        )?;
        #[derive(Deserialize)]
        struct Named {
            kind: String,
            name: String,
        }
        let mut names = Vec::new();
        for entry in lines {
            let (line, value) = entry?;
            let Named { kind, name } =
                field(value, &file, line, "name", "{\"kind\": ..., \"name\": ...}")?;
            if !provenance.kinds.contains_key(&kind) {
                return Err(Error::Field {
                    file: file.clone(),
                    line,
                    field: "kind".into(),
                    expected: format!(
                        "one of the first line's kinds ({})",
                        provenance
                            .kinds
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    found: format!("{kind:?}"),
                });
            }
            names.push((kind, name));
        }
        Ok(SourceFile { provenance, names })
    }
}

impl CommonWords {
    /// Reads a common-word list: a provenance line, then `{"word", "zipf"}` lines.
    pub fn load(path: &Path) -> Result<CommonWords> {
        let file = path.display().to_string();
        let text = read_to_string(path)?;
        let mut provenance = None;
        let mut zipf = HashMap::new();
        #[derive(Deserialize)]
        struct Word {
            word: String,
            zipf: f64,
        }
        for entry in json_lines(&text, &file) {
            let (line, value) = entry?;
            if provenance.is_none() {
                provenance = Some(field(
                    value,
                    &file,
                    line,
                    "provenance",
                    "{\"package\", \"version\", \"license\", \"data\"}",
                )?);
                continue;
            }
            let w: Word = field(value, &file, line, "word", "{\"word\": ..., \"zipf\": ...}")?;
            zipf.insert(w.word.to_lowercase(), w.zipf);
        }
        let provenance = provenance.ok_or_else(|| Error::Field {
            file,
            line: 1,
            field: "provenance".into(),
            expected: "a first line naming the word list's package".into(),
            found: "an empty file".into(),
        })?;
        Ok(CommonWords { provenance, zipf })
    }
}

/// Every source file (`*.jsonl` but [`COMMON_WORDS`]) of `dir`, in file-name order.
pub fn read_sources(dir: &Path) -> Result<Vec<SourceFile>> {
    let io = |source| Error::Io {
        file: dir.display().to_string(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect::<Result<_>>()?;
    paths.retain(|p| {
        p.extension().is_some_and(|e| e == "jsonl")
            && p.file_name().is_some_and(|n| n != COMMON_WORDS)
    });
    paths.sort();
    paths.iter().map(|p| SourceFile::load(p)).collect()
}

impl TypeMap {
    /// Reads a type map: one TOML table per entity type (see [`TypeSpec`]).
    pub fn load(path: &Path) -> Result<TypeMap> {
        let file = path.display().to_string();
        let text = read_to_string(path)?;
        let types: BTreeMap<String, TypeSpec> =
            toml::from_str(&text).map_err(|e: toml::de::Error| Error::Field {
                file: file.clone(),
                line: e
                    .span()
                    .map_or(0, |s| text[..s.start].matches('\n').count() + 1),
                field: "type map".into(),
                expected: "tables `[type]` with sources, seeds, keep_common, case_variants".into(),
                found: e.message().to_string(),
            })?;
        if types.is_empty() {
            return Err(Error::Field {
                file,
                line: 1,
                field: "type map".into(),
                expected: "at least one `[type]` table".into(),
                found: "none".into(),
            });
        }
        Ok(TypeMap {
            types,
            path: path.to_path_buf(),
        })
    }
}

/// Whether rule 1 (shape) drops `name`.
fn bad_shape(name: &str, max_words: usize) -> bool {
    let chars = name.chars().count();
    chars < 2
        || (chars < 4 && !name.chars().any(char::is_uppercase))
        || name.split_whitespace().count() > max_words
        || name.contains(", ")
        || !name.chars().any(char::is_alphabetic)
}

/// `name` with its first letter's case flipped, when its second character is lower-case.
fn case_variant(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first = chars.next()?;
    let second = chars.next()?;
    if !second.is_lowercase() || !first.is_alphabetic() {
        return None;
    }
    let flipped: String = if first.is_uppercase() {
        first.to_lowercase().collect()
    } else {
        first.to_uppercase().collect()
    };
    Some(flipped + &name[first.len_utf8()..])
}

/// Merges `sources` (and the map's seeds) into per-type name lists under the rules of the
/// [module docs](self). Every `package:kind` the map names must be in `sources`.
pub fn build(
    sources: &[SourceFile],
    map: &TypeMap,
    common: Option<&CommonWords>,
    options: BuildOptions,
) -> Result<Gazetteer> {
    let mut by_source: HashMap<String, Vec<&str>> = HashMap::new();
    for source in sources {
        for (kind, name) in &source.names {
            by_source
                .entry(format!("{}:{kind}", source.provenance.package))
                .or_default()
                .push(name);
        }
        for kind in source.provenance.kinds.keys() {
            by_source
                .entry(format!("{}:{kind}", source.provenance.package))
                .or_default();
        }
    }
    let mut counts: BTreeMap<String, TypeCounts> = BTreeMap::new();
    // Type → name → first source.
    let mut kept: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (label, spec) in &map.types {
        let tally = counts.entry(label.clone()).or_default();
        let mut lists: Vec<(String, Vec<String>)> = Vec::new();
        for name in &spec.sources {
            let names = by_source.get(name).ok_or_else(|| Error::Invalid {
                file: map.path.display().to_string(),
                field: format!("{label}.sources"),
                expected: format!(
                    "a `package:kind` of the source files ({})",
                    sources
                        .iter()
                        .map(|s| s.provenance.package.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                found: format!("{name:?}"),
            })?;
            lists.push((name.clone(), names.iter().map(|s| s.to_string()).collect()));
        }
        for seed in &spec.seeds {
            let path = map.path.parent().unwrap_or(Path::new("")).join(seed);
            let lexicon = Lexicon::load(&path)?;
            let names = lexicon.types.get(label).ok_or_else(|| Error::Invalid {
                file: path.display().to_string(),
                field: label.clone(),
                expected: format!("a `{label} = [...]` list (seeds of type {label})"),
                found: format!("types {}", lexicon.labels().join(", ")),
            })?;
            lists.push((seed.display().to_string(), names.clone()));
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut names = Vec::new();
        for (source, list) in lists {
            let exempt = spec.keep_common.contains(&source);
            let mut n = 0;
            for name in list {
                if bad_shape(&name, options.max_words) {
                    tally.dropped_shape += 1;
                    continue;
                }
                let single_word = !name.contains(char::is_whitespace);
                if single_word && !exempt {
                    let z = common.and_then(|c| c.zipf.get(&name.to_lowercase()));
                    if z.is_some_and(|&z| z >= options.max_zipf) {
                        tally.dropped_common += 1;
                        continue;
                    }
                }
                let variant = spec.case_variants.then(|| case_variant(&name)).flatten();
                for form in std::iter::once(name).chain(variant) {
                    if seen.insert(form.clone()) {
                        names.push((form, source.clone()));
                        n += 1;
                    }
                }
            }
            *tally.sources.entry(source).or_default() += n;
        }
        kept.insert(label.clone(), names);
    }
    // Rule 4: names under several types.
    let mut types_of: HashMap<&str, usize> = HashMap::new();
    for names in kept.values() {
        for (name, _) in names {
            *types_of.entry(name).or_default() += 1;
        }
    }
    let ambiguous: HashSet<String> = types_of
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(name, _)| name.to_string())
        .collect();
    for (label, names) in kept.iter_mut() {
        let before = names.len();
        names.retain(|(name, _)| !ambiguous.contains(name));
        let tally = counts.get_mut(label).expect("counted above");
        tally.dropped_ambiguous = before - names.len();
        tally.names = names.len();
    }
    Ok(Gazetteer {
        types: kept,
        manifest: Manifest {
            sources: sources.iter().map(|s| s.provenance.clone()).collect(),
            common_words: common.map(|c| c.provenance.clone()),
            max_zipf: options.max_zipf,
            max_words: options.max_words,
            types: counts,
        },
    })
}

impl Gazetteer {
    /// Writes the lexicon as JSONL: one `{"source": provenance}` line per source file,
    /// then one `{"type", "name", "source"}` line per name.
    pub fn write_jsonl(&self, path: &Path) -> Result<()> {
        let mut out = String::new();
        for provenance in &self.manifest.sources {
            out += &serde_json::to_string(&LexiconLine::Source {
                source: provenance.clone(),
            })
            .expect("serialisable");
            out.push('\n');
        }
        for (label, names) in &self.types {
            for (name, source) in names {
                out += &serde_json::to_string(&LexiconLine::Name {
                    label: label.clone(),
                    name: name.clone(),
                    source: Some(source.clone()),
                })
                .expect("serialisable");
                out.push('\n');
            }
        }
        std::fs::write(path, out).map_err(|source| Error::Io {
            file: path.display().to_string(),
            source,
        })
    }
}

/// Reads a JSONL lexicon ([`Gazetteer::write_jsonl`]'s format; `{"type", "name"}` lines,
/// provenance lines skipped) into per-type names in first-seen order.
pub(crate) fn parse_jsonl_lexicon(text: &str, file: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut types: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for entry in json_lines(text, file) {
        let (line, value) = entry?;
        match field(
            value,
            file,
            line,
            "lexicon",
            "{\"type\": ..., \"name\": ...} or {\"source\": {...}}",
        )? {
            LexiconLine::Name { label, name, .. } => {
                let name = name.trim().to_string();
                if !name.chars().any(char::is_alphanumeric) {
                    return Err(Error::Field {
                        file: file.to_string(),
                        line,
                        field: label,
                        expected: "names with at least one letter or digit".into(),
                        found: format!("{name:?}"),
                    });
                }
                if seen.insert((label.clone(), name.clone())) {
                    types.entry(label).or_default().push(name);
                }
            }
            LexiconLine::Source { .. } => {}
        }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(package: &str, names: &[(&str, &str)]) -> SourceFile {
        let mut kinds = BTreeMap::new();
        for (kind, _) in names {
            kinds.insert(kind.to_string(), String::new());
        }
        SourceFile {
            provenance: Provenance {
                package: package.into(),
                version: "1.0".into(),
                license: "MIT".into(),
                data: String::new(),
                kinds,
            },
            names: names
                .iter()
                .map(|(k, n)| (k.to_string(), n.to_string()))
                .collect(),
        }
    }

    fn map(toml: &str) -> TypeMap {
        TypeMap {
            types: toml::from_str(toml).unwrap(),
            path: PathBuf::from("m.toml"),
        }
    }

    fn common() -> CommonWords {
        CommonWords {
            provenance: source("wordfreq", &[]).provenance,
            zipf: [("will", 6.4), ("china", 5.1), ("aspirin", 3.3)]
                .into_iter()
                .map(|(w, z)| (w.to_string(), z))
                .collect(),
        }
    }

    fn names(g: &Gazetteer, label: &str) -> Vec<String> {
        g.types[label].iter().map(|(n, _)| n.clone()).collect()
    }

    #[test]
    fn the_rules_drop_common_ambiguous_and_ill_shaped_names() {
        let sources = [
            source(
                "people",
                &[
                    ("first", "Will"),
                    ("first", "Jordan"),
                    ("first", "Ann"),
                    ("last", "Smith"),
                    ("first", "X"),
                ],
            ),
            source(
                "places",
                &[
                    ("country", "China"),
                    ("country", "Jordan"),
                    ("city", "Oslo"),
                ],
            ),
            source(
                "drugs",
                &[
                    ("drug", "aspirin"),
                    ("drug", "Heparin"),
                    ("drug", "inhibitor, tnf"),
                    ("drug", "ace"),
                ],
            ),
        ];
        let map = map("[PER]\nsources = [\"people:first\", \"people:last\"]\n\
             [LOC]\nsources = [\"places:country\", \"places:city\"]\nkeep_common = [\"places:country\"]\n\
             [Chemical]\nsources = [\"drugs:drug\"]\ncase_variants = true\n");
        let g = build(&sources, &map, Some(&common()), BuildOptions::default()).unwrap();
        assert_eq!(names(&g, "PER"), ["Ann", "Smith"]);
        assert_eq!(names(&g, "LOC"), ["China", "Oslo"]);
        assert_eq!(
            names(&g, "Chemical"),
            ["aspirin", "Aspirin", "Heparin", "heparin"]
        );
        let per = &g.manifest.types["PER"];
        assert_eq!(
            (per.dropped_common, per.dropped_shape, per.dropped_ambiguous),
            (1, 1, 1)
        );
        assert_eq!(g.manifest.types["Chemical"].dropped_shape, 2);
        assert_eq!(g.manifest.types["LOC"].sources["places:country"], 2);
        // Without the word list, "Will" stays.
        let g = build(&sources, &map, None, BuildOptions::default()).unwrap();
        assert!(names(&g, "PER").contains(&"Will".to_string()));
    }

    #[test]
    fn the_written_lexicon_reads_back_with_its_provenance_skipped() {
        let sources = [source("places", &[("city", "Oslo"), ("city", "Lima")])];
        let g = build(
            &sources,
            &map("[LOC]\nsources = [\"places:city\"]\n"),
            None,
            BuildOptions::default(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lex.jsonl");
        g.write_jsonl(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"source\":{\"package\":\"places\",\"version\":\"1.0\""));
        assert!(text.contains("{\"type\":\"LOC\",\"name\":\"Oslo\",\"source\":\"places:city\"}"));
        let lexicon = Lexicon::load(&path).unwrap();
        assert_eq!(lexicon.types["LOC"], ["Oslo", "Lima"]);
    }

    #[test]
    fn bad_files_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let p = write(
            "s.jsonl",
            "{\"package\":\"p\",\"version\":\"1\",\"license\":\"MIT\",\"data\":\"d\",\"kinds\":{\"city\":\"\"}}\n\
             {\"kind\":\"city\",\"name\":\"Oslo\"}\n{\"kind\":\"town\",\"name\":\"Lima\"}\n",
        );
        let e = SourceFile::load(&p).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "s.jsonl:3: kind: expected one of the first line's kinds (city), found \"town\""
            ),
            "{e}"
        );
        let p = write("m.toml", "[LOC]\nsource = [\"p:city\"]\n");
        let e = TypeMap::load(&p).unwrap_err().to_string();
        assert!(e.contains("m.toml:2: type map"), "{e}");
        let map = map("[LOC]\nsources = [\"p:town\"]\n");
        let e = build(&[], &map, None, BuildOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("LOC.sources") && e.contains("\"p:town\""), "{e}");
        let p = write(
            "l.jsonl",
            "{\"type\":\"LOC\",\"name\":\"Oslo\"}\n{\"type\":\"LOC\"}\n",
        );
        let e = Lexicon::load(&p).unwrap_err().to_string();
        assert!(e.contains("l.jsonl:2: lexicon"), "{e}");
    }
}
