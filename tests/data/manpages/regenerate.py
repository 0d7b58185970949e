"""Regenerate the man-page test corpus from Debian's libssl-doc (not run by the tests).

Usage: ``python tests/data/manpages/regenerate.py`` on a machine with libssl-doc;
``python tests/data/manpages/regenerate.py --wide DIR`` writes the wide tune set (below)
to DIR instead.

For every page in ``TUNE``, ``BLIND`` and ``FIXTURES`` this writes:

- ``headed/NAME.txt``: ``MANWIDTH=80 man -P cat 3ssl NAME`` as it is (headings kept,
  lines wrapped);
- ``plain/NAME.txt`` and ``plain/NAME.sections.json``: the same page in the format of
  the shipped pages (headings removed, one paragraph per line, verbatim lines such as
  the SYNOPSIS one per line, ``DATE VERSION`` footer) with the true section of every
  line, taken from the headings of the rendering.

This conversion is written independently of ``resume.manpage`` on purpose: the
labels it derives are the ground truth the parser is measured against.

The two samples were drawn with ``random.Random(3151126).sample(candidates, 80)``,
``candidates`` being the sorted distinct (non-symlink) pages of ``man3/*.3ssl.gz`` of
Debian's libssl-doc for OpenSSL 3.0, minus the six shipped pages and the pages an
earlier round of rule tuning had been read on (the DEV, HELD_OUT, DEV2 and FINAL
lists in this file's history, up to commit a51faa8): the first 40 are ``BLIND``, the next
40 ``TUNE``. ``TUNE`` pages may be read while changing the rules; ``BLIND`` pages are
only measured (``python -m benchmarks bench_manpage_accuracy``), never read into.
``FIXTURES`` are pages the tests name for one parsing case each; they are not measured.

The wide tune set is every distinct (non-symlink) ``man3/*.3ssl.gz`` page but the
``BLIND`` ones (571 pages, 20,730 blocks for OpenSSL 3.0.22): ``plain/NAME.txt`` and
``plain/NAME.sections.json`` in DIR, not kept in the repository (2.5 MB). It may be read
while changing the rules like ``TUNE``; ``python -m benchmarks bench_manpage_accuracy
--wide=DIR`` measures it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

# A header squeezed by a long title ("...(3OpOSSL_..."): the footer names the section.
FIXTURES = ["OSSL_CRMF_MSG_set1_regInfo_certReq"]

# See the docstring for how TUNE and BLIND were drawn. OSSL_DECODER_CTX was drawn into
# TUNE but left out: its C declarations clash with other corpus pages in the one Sphinx
# project of tests/unit/test_sphinxext.py.
TUNE = [
    "ERR_clear_error",
    "X509_sign",
    "SSL_SESSION_get_compress_id",
    "RSA_padding_add_PKCS1_type_1",
    "PKCS7_sign",
    "ASN1_item_sign",
    "ASN1_item_d2i_bio",
    "EVP_KEYMGMT",
    "SSL_set_connect_state",
    "SSL_CTX_set_tlsext_use_srtp",
    "OSSL_CMP_SRV_CTX_new",
    "CMS_EncryptedData_encrypt",
    "EVP_PKEY_keygen",
    "OSSL_DECODER_from_bio",
    "X509V3_set_ctx",
    "EVP_PKEY_gettable_params",
    "OSSL_CMP_MSG_http_perform",
    "SSL_CTX_set0_CA_list",
    "BF_encrypt",
    "SSL_get_SSL_CTX",
    "EVP_PKEY_copy_parameters",
    "EC_GROUP_new",
    "PKCS12_get_friendlyname",
    "OSSL_CALLBACK",
    "EVP_CIPHER_CTX_get_original_iv",
    "X509_dup",
    "EVP_PKEY_asn1_get_count",
    "PKCS12_add_localkeyid",
    "OSSL_LIB_CTX",
    "CMS_data_create",
    "SCT_validate",
    "PKCS12_SAFEBAG_create_cert",
    "SSL_SESSION_get0_hostname",
    "PKCS12_SAFEBAG_get1_cert",
    "OSSL_HTTP_REQ_CTX",
    "ERR_set_mark",
    "DSA_generate_parameters",
    "CRYPTO_memcmp",
    "EVP_PKEY_get_group_name",
]

BLIND = [
    "SSL_CTX_ctrl",
    "CTLOG_STORE_get0_log_by_id",
    "PKCS12_add_safe",
    "BIO_printf",
    "BN_mod_exp_mont",
    "OSSL_CRMF_MSG_get0_tmpl",
    "BN_rand",
    "CONF_modules_load_file",
    "PKCS12_SAFEBAG_get0_attrs",
    "EVP_PKEY_ASN1_METHOD",
    "OSSL_STORE_LOADER",
    "BN_zero",
    "PKCS12_init",
    "EC_POINT_add",
    "ERR_GET_LIB",
    "RAND_cleanup",
    "EVP_OpenInit",
    "EVP_SIGNATURE",
    "EVP_PKEY_CTX_get0_pkey",
    "SSL_CTX_has_client_custom_ext",
    "X509_check_purpose",
    "SSL_state_string",
    "DSA_set_method",
    "OSSL_trace_enabled",
    "SSL_CTX_set1_curves",
    "OSSL_CRMF_MSG_set1_regCtrl_regToken",
    "SSL_SESSION_set1_id",
    "SSL_CTX_set_srp_password",
    "CONF_modules_free",
    "SSL_get_peer_cert_chain",
    "SSL_CTX_set_msg_callback",
    "ASN1_TIME_set",
    "SSL_get_fd",
    "X509_get_subject_name",
    "RIPEMD160_Init",
    "DTLSv1_listen",
    "PKCS7_verify",
    "SSL_get_all_async_fds",
    "SSL_get_version",
    "EVP_md5",
]

_HEADING = re.compile(r"^[A-Z][A-Z0-9 /_-]*$")


def render(name: str, section: str | None = None) -> str:
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    if section is None:
        section = "7ssl" if name in {"bio", "crypto", "ssl"} else "3ssl"
    out = subprocess.run(["man", "-P", "cat", section, name], env=env, check=True,
                         capture_output=True, text=True).stdout
    return out


def _clean(text: str) -> str:
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    return " ".join(text.split())


def _join(lines: list[str]) -> str:
    out = ""
    for line in lines:
        if re.search(r"[A-Za-z0-9]-$", out):
            out += line
        else:
            out = f"{out} {line}" if out else line
    return out


def flatten(rendering: str) -> tuple[str, list[str]]:
    lines = rendering.rstrip("\n").split("\n")
    header = " ".join(lines[0].split())
    footer_words = lines[-1].split()
    version = footer_words[0]
    date = re.search(r"\d{4}-\d\d(?:-\d\d)?", lines[-1])
    out = [header, ""]
    labels: list[str] = []
    section = ""
    para: list[str] = []

    def flush() -> None:
        if not para:
            return
        indent = len(para[0]) - len(para[0].lstrip())
        if indent > 7 and (indent - 7) % 4 != 0:
            # verbatim text (SYNOPSIS, code): one block per line, like the shipped pages
            for line in para:
                out.append(line.strip())
                labels.append(section)
            out.append("")
        else:
            out.extend([_clean(_join([p.strip() for p in para])), ""])
            labels.append(section)
        para.clear()

    for line in lines[1:-1]:
        if not line.strip():
            flush()
            continue
        if _HEADING.match(line):
            flush()
            section = line.strip()
            # the singular spellings some pages use name the standard sections
            section = {"NOTE": "NOTES", "RETURN VALUE": "RETURN VALUES",
                       "EXAMPLE": "EXAMPLES"}.get(section, section)
            continue
        para.append(line)
    flush()
    out.append(f"{date.group(0) if date else ''} {version}".strip())
    return "\n".join(out) + "\n", labels


def wide(out: Path) -> None:
    """Write the wide tune set (see the module's docstring) to *out*/plain."""
    folder = Path("/usr/share/man/man3")
    blind = set(BLIND)
    names = sorted(
        p.name[: -len(".3ssl.gz")] for p in folder.glob("*.3ssl.gz") if not p.is_symlink()
    )
    (out / "plain").mkdir(parents=True, exist_ok=True)
    for name in names:
        if name in blind:
            continue
        text, labels = flatten(render(name, "3ssl"))
        (out / "plain" / f"{name}.txt").write_text(text)
        (out / "plain" / f"{name}.sections.json").write_text(json.dumps(labels, indent=0) + "\n")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--wide":
        wide(Path(sys.argv[2]))
        return
    here = Path(__file__).parent
    (here / "headed").mkdir(exist_ok=True)
    (here / "plain").mkdir(exist_ok=True)
    for name in TUNE + BLIND + FIXTURES:
        rendering = render(name)
        (here / "headed" / f"{name}.txt").write_text(rendering)
        text, labels = flatten(rendering)
        (here / "plain" / f"{name}.txt").write_text(text)
        (here / "plain" / f"{name}.sections.json").write_text(json.dumps(labels, indent=0) + "\n")
    corpus = {"tune": TUNE, "blind": BLIND}
    (here / "corpus.json").write_text(json.dumps(corpus, indent=1) + "\n")


if __name__ == "__main__":
    main()
