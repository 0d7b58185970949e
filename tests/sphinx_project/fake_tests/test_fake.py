# Stand-in tests whose marks the conformance matrix reads (never run by pytest: the
# file lives outside tests/'s collection because conftest-less folders under
# tests/sphinx_project are excluded in tests/test_sphinxext.py's copy only).
import pytest

pytestmark = pytest.mark.manpage("SSL_SESSION_free:desc-1")


@pytest.mark.manpage("SSL_SESSION_free:desc-2", "SSL_SESSION_free:desc-3")
def test_dup_copies() -> None:
    assert True


class TestFree:
    @pytest.mark.manpage("SSL_SESSION_free:desc-4")
    def test_free(self) -> None:
        assert True
