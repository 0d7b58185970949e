"""Tests of the man-page parser ``resume.manpage.parse`` (pure Python, no Sphinx)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resume.manpage import (
    NORMATIVE_SECTIONS,
    Block,
    ManPage,
    ManPageError,
    Parameter,
    parse,
    parse_prototype,
    sentence_id,
    split_sentences,
)
from resume.manpage._sections import KNOWN_SECTIONS, decode, recover_sections
from resume.manpage._sentences import is_normative

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "docs" / "manpages" / "source"
CORPUS = ROOT / "tests" / "data" / "manpages"
SHARED_NAMES = sorted(p.stem for p in SHARED.glob("*.txt"))
CORPUS_NAMES = json.loads((CORPUS / "corpus.json").read_text())
ALL_CORPUS = [name for group in CORPUS_NAMES.values() for name in group]
# Pages shipped as their headed rendering (libssl-doc's ``man -P cat``) rather than the
# heading-less text they were given, because that text's sections cannot be recovered:
# SSL_read_early_data has a section of its own, REPLAY PROTECTION, which no heading-less
# rule can name. The heading-less copy is kept in tests/data/manpages/plain/.
SHIPPED_HEADED = {"SSL_read_early_data"}


def shared(name: str) -> ManPage:
    return parse((SHARED / f"{name}.txt").read_text(), name=name)


def truth(folder: Path, name: str) -> list[str]:
    labels: list[str] = json.loads((folder / f"{name}.sections.json").read_text())
    return labels


class TestSharedPages:
    """The eight shipped pages parse to exactly their expected sections."""

    def test_all_eight_are_there(self) -> None:
        assert len(SHARED_NAMES) == 8

    @pytest.mark.parametrize("name", SHARED_NAMES)
    def test_sections_match_expectations(self, name: str) -> None:
        page = shared(name)
        assert [b.section for b in page.blocks] == truth(SHARED, name)
        assert page.source_format == ("headed" if name in SHIPPED_HEADED else "plain")

    @pytest.mark.parametrize("name", [n for n in SHARED_NAMES if n != "SSL_SESSION_free"])
    def test_headed_rendering_gives_the_same_page(self, name: str) -> None:
        # for a page shipped headed, its heading-less copy is the other rendering
        folder, kind = ("plain", "plain") if name in SHIPPED_HEADED else ("headed", "headed")
        plain = shared(name)
        headed = parse((CORPUS / folder / f"{name}.txt").read_text(), name=name)
        if name in SHIPPED_HEADED:
            # the same text, block for block; only the sections differ (next test)
            assert headed.source_format == kind
            assert [b.text for b in headed.blocks] == [b.text for b in plain.blocks]
            assert headed.synopsis == plain.synopsis
            return
        assert headed.source_format == "headed"
        assert [(b.section, b.text) for b in headed.blocks] == [
            (b.section, b.text) for b in plain.blocks
        ]
        assert headed.sentences == plain.sentences
        assert headed.synopsis == plain.synopsis

    @pytest.mark.xfail(strict=True, reason="known miss of the heading-less recovery")
    @pytest.mark.parametrize("name", sorted(SHIPPED_HEADED))
    def test_heading_less_copy_is_not_recovered(self, name: str) -> None:
        # Why the page is shipped headed: the rules label SSL_read_early_data's
        # "may return 3 possible values" and what follows as RETURN VALUES, and its
        # REPLAY PROTECTION as NOTES (44 of 65 blocks right). Strict: when the rules
        # learn to recover it, this fails and the page can be shipped heading-less.
        page = parse((CORPUS / "plain" / f"{name}.txt").read_text(), name=name)
        assert [b.section for b in page.blocks] == truth(CORPUS / "plain", name)


class TestCorpus:
    """Renderings of libssl-doc pages: exact with headings, recovered without."""

    @pytest.mark.parametrize("name", ALL_CORPUS)
    def test_headed_sections_are_exact(self, name: str) -> None:
        page = parse((CORPUS / "headed" / f"{name}.txt").read_text())
        assert [b.section for b in page.blocks] == truth(CORPUS / "plain", name)

    def test_heading_less_recovery_is_mostly_right(self) -> None:
        right = total = 0
        for name in ALL_CORPUS:
            page = parse((CORPUS / "plain" / f"{name}.txt").read_text())
            expected = truth(CORPUS / "plain", name)
            assert len(page.blocks) == len(expected), name
            right += sum(b.section == e for b, e in zip(page.blocks, expected, strict=True))
            total += len(expected)
        # A floor that catches regressions; the figures are in benchmarks/.
        assert right / total > 0.70


class TestRulesRecovery:
    """The rules and the order search of the heading-less section recovery."""

    def test_tune_pages_are_mostly_right(self) -> None:
        # the rules alone label 94.0% of the TUNE blocks (bench_manpage_accuracy)
        right = total = 0
        for name in CORPUS_NAMES["tune"]:
            page = parse((CORPUS / "plain" / f"{name}.txt").read_text())
            expected = truth(CORPUS / "plain", name)
            right += sum(b.section == e for b, e in zip(page.blocks, expected, strict=True))
            total += len(expected)
        assert right / total > 0.93

    def test_order_search_keeps_a_section_whole(self) -> None:
        # the middle block sounds a little like NOTES, but switching there and back costs
        # more than it gains: the search keeps one DESCRIPTION
        flat = dict.fromkeys(KNOWN_SECTIONS, -5.0)
        rows = [
            {**flat, "NAME": 10.0},
            {**flat, "DESCRIPTION": 1.0},
            {**flat, "DESCRIPTION": 0.0, "NOTES": 1.0},
            {**flat, "DESCRIPTION": 1.0},
        ]
        assert decode(rows) == ["NAME", "DESCRIPTION", "DESCRIPTION", "DESCRIPTION"]
        # a clear run of NOTES at the end is worth the switch
        rows[3] = {**flat, "DESCRIPTION": 0.0, "NOTES": 2.0}
        assert decode(rows) == ["NAME", "DESCRIPTION", "NOTES", "NOTES"]
        assert decode([]) == []

    def test_a_fragment(self) -> None:
        texts = [
            "P_do - do things",
            "P_do() does one thing. It does another.",
            "P_do() also does a third thing.",
            "Applications should not care.",
            "P_do() returns 1 on success or 0 on error.",
            "Copyright 2024 The OpenSSL Project Authors. All Rights Reserved.",
        ]
        assert recover_sections(texts, functions=["P_do"]) == [
            "NAME", "DESCRIPTION", "DESCRIPTION", "NOTES", "RETURN VALUES", "COPYRIGHT",
        ]

    def test_squeezed_header_keeps_its_section(self) -> None:
        # "TITLE(OTITLE(3SSL)": no room for the first "(3ssl)" at all
        name = "OSSL_CRMF_MSG_set1_regCtrl_regToken"
        page = parse((CORPUS / "plain" / f"{name}.txt").read_text())
        assert (page.name, page.manual_section) == (name, "3ssl")


class TestModel:
    """Header, footer, NAME, SYNOPSIS and the other sections of one page."""

    def test_header_and_footer(self) -> None:
        page = shared("SSL_SESSION_free")
        assert page.name == "SSL_SESSION_free"
        assert page.title == "SSL_SESSION_FREE"
        assert page.manual_section == "3ssl"
        assert (page.version, page.date) == ("3.2.1", "2024-01-30")

    def test_headed_footer_has_version_then_date(self) -> None:
        page = parse((CORPUS / "headed" / "SSL_get_session.txt").read_text())
        assert (page.version, page.date) == ("3.0.22", "2026-08-25")
        assert page.manual_section == "3ssl"
        assert page.name == "SSL_get_session"

    def test_squeezed_header(self) -> None:
        # a long title leaves no room for the header's "(3ssl)": the footer has it
        page = parse((CORPUS / "headed" / "OSSL_CRMF_MSG_set1_regInfo_certReq.txt").read_text())
        assert page.title == "OSSL_CRMF_MSG_SET1_REGINFO_CERTREQ"
        assert page.manual_section == "3ssl"
        assert page.name == "OSSL_CRMF_MSG_set1_regInfo_certReq"
        plain = parse((CORPUS / "plain" / "OSSL_CRMF_MSG_set1_regInfo_certReq.txt").read_text())
        assert plain.manual_section == "3"  # as much as the squeezed header tells

    def test_name_lists_functions_and_summary(self) -> None:
        page = shared("SSL_SESSION_free")
        assert page.functions == (
            "SSL_SESSION_new", "SSL_SESSION_dup", "SSL_SESSION_up_ref", "SSL_SESSION_free",
        )
        assert page.summary == "create, free and manage SSL_SESSION structures"

    def test_synopsis_prototypes(self) -> None:
        synopsis = shared("SSL_SESSION_free").synopsis
        assert synopsis.includes == ("<openssl/ssl.h>",)
        dup = synopsis.prototypes[1]
        assert (dup.return_type, dup.name) == ("SSL_SESSION *", "SSL_SESSION_dup")
        assert dup.parameters == (Parameter("const SSL_SESSION *", "src"),)
        assert synopsis.prototypes[0].parameters == ()
        assert dup.signature == "SSL_SESSION *SSL_SESSION_dup(const SSL_SESSION *src)"

    def test_wrapped_prototype_is_joined(self) -> None:
        synopsis = shared("d2i_SSL_SESSION").synopsis
        d2i = synopsis.prototypes[0]
        assert d2i.name == "d2i_SSL_SESSION"
        assert [p.name for p in d2i.parameters] == ["a", "pp", "length"]
        assert d2i.parameters[1].type == "const unsigned char **"

    def test_sections_and_views(self) -> None:
        page = shared("SSL_SESSION_free")
        assert [s.title for s in page.sections] == [
            "NAME", "SYNOPSIS", "DESCRIPTION", "NOTES", "RETURN VALUES", "SEE ALSO",
            "HISTORY", "COPYRIGHT",
        ]
        assert len(page.description) == 4
        assert page.return_values[2] == "SSL_SESSION_up_ref returns 1 on success or 0 on error."
        assert page.history == ("The SSL_SESSION_dup() function was added in OpenSSL 1.1.1.",)
        assert page.copyright[0].startswith("Copyright 2000-2023 The OpenSSL Project Authors")
        assert [str(r) for r in page.see_also][:2] == ["ssl(7)", "SSL_get_session(3)"]

    def test_other_sections(self) -> None:
        page = shared("ssl")
        assert [s.title for s in page.other_sections] == ["DATA STRUCTURES", "HEADER FILES"]

    def test_items_are_detected(self) -> None:
        page = shared("SSL_CTX_set_session_cache_mode")
        items = [b for b in page.blocks if b.kind == "item"]
        assert items[0].term == "SSL_SESS_CACHE_OFF"
        assert items[0].body == "No session caching for client or server takes place."
        assert len(items) == 9

    def test_headed_items_and_code(self) -> None:
        page = parse((CORPUS / "headed" / "ASN1_item_sign.txt").read_text())
        assert any(b.kind == "code" and b.section == "EXAMPLES" for b in page.blocks)
        assert all(isinstance(b, Block) for b in page.blocks)


class TestSentences:
    """Normative sentences get the IDs of the shared contract."""

    def test_first_description_sentence(self) -> None:
        first = shared("SSL_SESSION_free").sentences[0]
        assert first.id == "SSL_SESSION_free:desc-1"
        assert first.text == (
            "SSL_SESSION_new() creates a new SSL_SESSION structure and returns a pointer to it."
        )

    @pytest.mark.parametrize("name", SHARED_NAMES)
    def test_ids_follow_the_contract(self, name: str) -> None:
        page = shared(name)
        expected: list[str] = []
        counts: dict[str, int] = {}
        for block in page.blocks:
            if is_normative(block.section):
                for _ in split_sentences(block.text):
                    counts[block.section] = counts.get(block.section, 0) + 1
                    expected.append(sentence_id(name, block.section, counts[block.section]))
        assert [s.id for s in page.sentences] == expected
        assert len(set(expected)) == len(expected)

    def test_non_normative_sections_have_no_ids(self) -> None:
        sections = {s.section for n in SHARED_NAMES for s in shared(n).sentences}
        assert sections - NORMATIVE_SECTIONS == {"REPLAY PROTECTION"}
        assert "SEE ALSO" not in sections

    def test_a_section_of_the_page_s_own_is_normative(self) -> None:
        # SSL_read_early_data(3)'s REPLAY PROTECTION holds its rules on single-use tickets
        page = shared("SSL_read_early_data")
        replay = [s for s in page.sentences if s.section == "REPLAY PROTECTION"]
        assert replay[0].id == "SSL_read_early_data:replay-protection-1"
        assert replay[0].text.startswith("When early data is in use the TLS protocol")
        assert len(replay) == 24
        assert is_normative("PARAMETERS") and is_normative("NOTES")
        assert not any(is_normative(s) for s in ("NAME", "SYNOPSIS", "EXAMPLES", "SEE ALSO",
                                                  "HISTORY", "COPYRIGHT"))


class TestPrototypes:
    """``parse_prototype`` on single declarations."""

    def test_plain(self) -> None:
        proto = parse_prototype("long SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode);")
        assert proto is not None
        assert proto.return_type == "long"
        assert proto.parameters == (Parameter("SSL_CTX *", "ctx"), Parameter("long", "mode"))

    def test_function_pointer_parameter(self) -> None:
        proto = parse_prototype(
            "void SSL_CTX_sess_set_new_cb(SSL_CTX *ctx,"
            " int (*new_session_cb)(SSL *, SSL_SESSION *));"
        )
        assert proto is not None
        assert proto.parameters[1].name == "new_session_cb"

    def test_array_parameter(self) -> None:
        proto = parse_prototype("int f(unsigned char key_name[16], int n);")
        assert proto is not None
        assert proto.parameters[0] == Parameter("unsigned char", "key_name[16]")

    @pytest.mark.parametrize(
        "text",
        [
            "int (*SSL_CTX_sess_get_new_cb(SSL_CTX *ctx))(SSL *ssl, SSL_SESSION *sess);",
            "#define SSL_get0_session SSL_get_session",
            "STACK_OF(X509) *SSL_get_peer_cert_chain(const SSL *ssl);",
            "This is prose.",
        ],
    )
    def test_not_a_plain_prototype(self, text: str) -> None:
        assert parse_prototype(text) is None


class TestBadInput:
    """Input that is not a man page gets a clear ManPageError."""

    def test_error_is_a_value_error(self) -> None:
        assert issubclass(ManPageError, ValueError)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "empty"),
            ("   \n\n  \n", "empty"),
            ("\x7fELF\x02\x01\x01\x00\x00\x00\x00binary", "binary"),
            ("Dear diary,\ntoday I parsed a man page.\n", "header"),
            ("SSL_FOO(3ssl) OpenSSL SSL_FOO(3ssl)\n\n2024-01-30 3.2.1\n", "NAME"),
            ("SSL_FOO(3ssl) OpenSSL SSL_FOO(3ssl)\n\nthis is not a name line at all.\n", "NAME"),
        ],
    )
    def test_rejected(self, text: str, message: str) -> None:
        with pytest.raises(ManPageError, match=message):
            parse(text)

    def test_not_text(self) -> None:
        with pytest.raises(ManPageError, match="text"):
            parse(b"SSL_FOO(3ssl)")  # type: ignore[arg-type]

    def test_headed_text_before_first_heading(self) -> None:
        text = "FOO(3ssl) OpenSSL FOO(3ssl)\n\n       stray text\n\nNAME\n       foo - bar\n"
        with pytest.raises(ManPageError, match="before the first heading"):
            parse(text)
