"""`edge.bounded` and `edge.names`: properties over any input (hypothesis)."""

from __future__ import annotations

import io
import tarfile
import unicodedata
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.bounded import read_stream, read_tar_member, read_zip_member
from edge.errors import EdgeError
from edge.names import MAX_NAME_CHARS, escaped, name_fault


@given(data=st.binary(max_size=4096), limit=st.integers(0, 4096), declared=st.none() | st.integers(0, 8192))
def test_a_stream_is_returned_whole_within_the_bound_else_refused(data, limit, declared):
    f = io.BytesIO(data)
    if len(data) > limit or (declared is not None and declared > limit):
        with pytest.raises(EdgeError, match="over "):
            read_stream(f, limit, "x", declared)
        assert f.tell() <= limit + 1  # never read past the bound
    else:
        assert read_stream(f, limit, "x", declared) == data


@given(data=st.binary(max_size=2048), limit=st.integers(0, 2048), lie=st.booleans())
def test_zip_and_tar_members_are_bounded_by_what_is_read(data, limit, lie):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m", data)
    with zipfile.ZipFile(buf) as z:
        if len(data) > limit:
            with pytest.raises(EdgeError):
                read_zip_member(z, "m", limit, "m")
        else:
            assert read_zip_member(z, "m", limit, "m") == data
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("m")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        member = tar.next()
        if lie:  # a declared size smaller than the data: still bounded by what is read
            member.size = min(member.size, limit)
        if member.size > limit:
            with pytest.raises(EdgeError):
                read_tar_member(tar, member, limit, "m")
        else:
            assert len(read_tar_member(tar, member, limit, "m")) <= limit


@given(st.text(max_size=300))
def test_a_name_is_refused_exactly_when_it_is_blank_long_or_holds_a_control(name):
    bad = (not name.strip() or len(name) > MAX_NAME_CHARS
           or any(unicodedata.category(c) == "Cc" or c in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                  "\u2066\u2067\u2068\u2069" for c in name))  # fmt: skip
    assert (name_fault(name) is not None) == bad
    assert name_fault(escaped(name)) is None or not escaped(name).strip() or len(escaped(name)) > MAX_NAME_CHARS
