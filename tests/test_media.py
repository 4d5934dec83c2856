"""Uploads: the real type decides, sizes are limited while streaming, and photos lose every bit of metadata."""
import hashlib
import io
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib

import pytest
from PIL import Image, ImageCms
from sqlalchemy import func
from sqlmodel import select

from tracker import media
from tracker.errors import InvalidInput
from tracker.models import Blob
from tracker.storage import CHUNK, HEAD, LocalStorage

SERIAL = "SN-4417-CAMERA"
COMMENT = b"Mrs Example, room 12"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>Assessor A</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')


# ---------------------------------------------------------------- files made here


def tagged_jpeg(size: tuple[int, int] = (400, 300), orientation: int = 6) -> bytes:
    """A JPEG whose top half is red and bottom half blue, with GPS, a camera serial, XMP, a comment and ICC."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0], size[1] // 2))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TabletMaker"
    exif[0x0110] = "Tablet 9"
    exif.get_ifd(0x8769)[0xA431] = SERIAL  # BodySerialNumber
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 40.2)})  # GPS
    out = io.BytesIO()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image.save(out, "JPEG", exif=exif.tobytes(), comment=COMMENT, xmp=XMP, icc_profile=icc, quality=95)
    return out.getvalue()


def png(size: tuple[int, int] = (20, 10), mode: str = "RGB", color=(10, 200, 30)) -> bytes:  # noqa: ANN001
    """A small PNG."""
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming these dimensions, with one tiny row of pixels and IEND."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + png_chunk(b"IEND", b""))


def office_zip(entries: dict[str, bytes]) -> bytes:
    """A ZIP file with these entries, in this order."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data, zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED)
    return out.getvalue()


CONTENT_TYPES = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                 b'wordprocessingml.document.main+xml"/></Types>')
DOCX = office_zip({"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": b"<Relationships/>",
                   "word/document.xml": b"<w:document/>"})
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n" \
      b"trailer<</Root 1 0 R>>\n%%EOF\n"


def ebml(element: int, payload: bytes) -> bytes:
    """One EBML element with an 8-byte size."""
    return element.to_bytes((element.bit_length() + 7) // 8, "big") + (0x01 << 56 | len(payload)).to_bytes(8, "big") \
        + payload


def webm(*track_types: int) -> bytes:
    """The start of a WebM file listing tracks of these types (1 video, 2 audio)."""
    header = ebml(0x1A45DFA3, ebml(0x4282, b"webm"))
    tracks = ebml(0x1654AE6B, b"".join(ebml(0xAE, ebml(0xD7, bytes([n + 1])) + ebml(0x83, bytes([kind])))
                                       for n, kind in enumerate(track_types)))
    return header + ebml(0x18538067, ebml(0x1549A966, b"") + tracks) + b"\x00" * 64


def ftyp(brand: bytes, *compatible: bytes) -> bytes:
    """The ftyp box that opens an ISO media file."""
    body = brand + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


class CountingStream(io.RawIOBase):
    """A stream of `size` bytes starting with `head`, made as it is read, that counts what was taken."""

    def __init__(self, head: bytes, size: int):
        self.head, self.size, self.taken = head, size, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.taken if n < 0 else min(n, self.size - self.taken)
        start, self.taken = self.taken, self.taken + n
        data = self.head[start:start + n]
        return data + b"\x00" * (n - len(data))


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def storage(tmp_path):
    """A local blob store in this test's folder."""
    return LocalStorage(tmp_path / "media")


def blob_count(session) -> int:  # noqa: ANN001
    """How many Blob rows there are."""
    return session.exec(select(func.count()).select_from(Blob)).one()


def leftovers(storage: LocalStorage) -> list:
    """Temp files left in the store's spool folder."""
    return list(storage.spool_dir.iterdir()) if storage.spool_dir.exists() else []


def refused(session, storage, data: bytes, name: str) -> str:  # noqa: ANN001
    """Ingest a file that must be refused; check nothing was kept and return the message."""
    before = blob_count(session)
    with pytest.raises(InvalidInput) as caught:
        media.ingest(session, storage, io.BytesIO(data), name, "application/octet-stream")
    assert caught.value.field == "file"
    assert blob_count(session) == before and leftovers(storage) == []
    return caught.value.message


# ---------------------------------------------------------------- photos


def test_a_photo_loses_all_metadata_and_is_turned_upright(backend, session, storage):
    """GPS, camera serial, XMP, comment and ICC are gone; orientation 6 is applied to the pixels."""
    source = tagged_jpeg()
    with Image.open(io.BytesIO(source)) as original:  # the test file really carries all of it
        assert original.getexif()[0x0112] == 6 and original.getexif().get_ifd(0x8825)
        assert {"exif", "xmp", "comment", "icc_profile"} <= set(original.info)
    stored = media.ingest(session, storage, io.BytesIO(source), "IMG_0001.JPG", "image/jpeg")
    data = storage.path(stored.sha256).read_bytes()
    assert hashlib.sha256(data).hexdigest() == stored.sha256 and stored.size == len(data)
    assert (stored.media_type, stored.category, stored.filename) == ("image/jpeg", "image", "IMG_0001.JPG")
    for needle in (b"Exif", SERIAL.encode(), COMMENT, b"adobe:ns:meta", b"TabletMaker", b"ICC_PROFILE"):
        assert needle not in data
    with Image.open(io.BytesIO(data)) as cleaned:
        assert len(cleaned.getexif()) == 0
        assert not {"exif", "xmp", "comment", "icc_profile"} & set(cleaned.info)
        assert cleaned.size == (300, 400)  # width and height swapped
        red, blue = cleaned.convert("RGB").getpixel((250, 200)), cleaned.convert("RGB").getpixel((50, 200))
        assert red[0] > 200 > red[2] and blue[2] > 200 > blue[0]  # the top of the sensor is now on the right


def test_screen_and_thumbnail_copies_are_stored_at_their_sizes(backend, session, storage):
    """A 2400x1800 photo held sideways: full size kept, screen copy 1600 and thumbnail 320 on the long side."""
    stored = media.ingest(session, storage, io.BytesIO(tagged_jpeg((2400, 1800))), "wide.jpg", "image/jpeg")
    sizes = {}
    for label, sha in (("full", stored.sha256), ("screen", stored.screen_sha256), ("thumb", stored.thumb_sha256)):
        with storage.open(sha) as file, Image.open(file) as image:
            assert image.format == "JPEG" and len(image.getexif()) == 0 and "exif" not in image.info
            sizes[label] = image.size
    assert sizes == {"full": (1536, 2048), "screen": (1200, 1600), "thumb": (240, 320)}
    assert media.derived_sha256(session, stored.sha256, "screen") == stored.screen_sha256
    assert media.derived_sha256(session, stored.sha256, "thumb") == stored.thumb_sha256
    assert media.derived_sha256(session, stored.sha256, "poster") is None
    assert session.get(Blob, stored.screen_sha256).media_type.startswith("image/jpeg")


def test_the_full_size_is_capped(monkeypatch, tmp_path):
    """The re-encoded photo's long side is at most FULL."""
    monkeypatch.setattr(media, "FULL", 500)
    path = tmp_path / "big.jpg"
    path.write_bytes(tagged_jpeg((1200, 900), orientation=1))
    processed = media.process_image(path)
    assert (processed.full.width, processed.full.height) == (500, 375)
    assert (processed.screen.width, processed.thumb.width) == (500, 320)


def test_a_transparent_png_stays_png_and_its_copies_are_jpeg(backend, session, storage):
    """A signature drawn on a transparent canvas keeps its transparency; the copies are flattened JPEGs."""
    stored = media.ingest(session, storage, io.BytesIO(png((40, 20), "RGBA", (0, 0, 0, 0))), "signature.png",
                          "image/png")
    assert stored.media_type == "image/png" and stored.filename == "signature.png"
    with storage.open(stored.sha256) as file, Image.open(file) as image:
        assert image.mode == "RGBA" and image.getpixel((0, 0))[3] == 0
    with storage.open(stored.thumb_sha256) as file, Image.open(file) as thumb:
        assert thumb.format == "JPEG" and thumb.getpixel((0, 0)) == (255, 255, 255)


def test_an_opaque_png_is_stored_as_jpeg_with_a_matching_name(backend, session, storage):
    """Images without transparency are re-encoded as JPEG, and the name says so."""
    stored = media.ingest(session, storage, io.BytesIO(png()), "scan.png", "image/png")
    assert (stored.media_type, stored.filename) == ("image/jpeg", "scan.jpg")


def test_a_sixteen_bit_grey_png_is_brought_to_eight_bits(backend, session, storage):
    """16-bit greys (some scanners) are scaled, not clipped to white."""
    out = io.BytesIO()
    Image.new("I;16", (30, 20), 32768).save(out, "PNG")
    stored = media.ingest(session, storage, io.BytesIO(out.getvalue()), "scan.png", "image/png")
    with storage.open(stored.sha256) as file, Image.open(file) as image:
        assert image.mode == "L" and 120 <= image.getpixel((5, 5)) <= 136


def test_a_broken_colour_profile_is_dropped_without_fuss(tmp_path):
    """An ICC profile that cannot be parsed is ignored: the photo is still cleaned and stored."""
    path = tmp_path / "odd.jpg"
    Image.new("RGB", (50, 40), (90, 120, 150)).save(path, "JPEG", icc_profile=b"not a profile at all")
    processed = media.process_image(path)
    assert b"not a profile" not in processed.full.data
    with Image.open(io.BytesIO(processed.full.data)) as image:
        assert "icc_profile" not in image.info


def test_the_same_photo_twice_is_stored_once(backend, session, storage):
    """Same bytes, same cleaned photo and copies: no new Blob rows the second time."""
    source = tagged_jpeg()
    first = media.ingest(session, storage, io.BytesIO(source), "a.jpg", "image/jpeg")
    rows = blob_count(session)
    second = media.ingest(session, storage, io.BytesIO(source), "b.jpg", "image/jpeg")
    assert (second.sha256, second.screen_sha256, second.thumb_sha256) == \
        (first.sha256, first.screen_sha256, first.thumb_sha256)
    assert blob_count(session) == rows and second.filename == "b.jpg"
    session.commit()
    assert session.exec(select(func.count()).select_from(Blob).where(Blob.sha256 == first.sha256)).one() == 1


def test_a_png_bomb_is_refused_from_its_header_alone(tmp_path):
    """A 1x1 PNG whose IHDR claims 50,000 x 50,000 is refused at once, without decoding."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(50_000, 50_000))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidInput, match="too large to process safely"):
            media.process_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1 and peak < 2 * 1024 * 1024


@pytest.mark.parametrize("width", [8_000, 50_000])
def test_images_over_the_pixel_cap_are_refused_even_when_warnings_are_not_errors(tmp_path, width):
    """Over the cap Pillow only warns (up to twice the cap): that is a refusal however warnings are set."""
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(width, 8_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidInput, match="too large to process safely"):
            media.process_image(path)
    with pytest.raises(InvalidInput, match="too large to process safely"):
        media.process_image(path)  # and with pytest's warnings-as-errors


def test_a_png_bomb_upload_is_refused_and_nothing_is_kept(backend, session, storage):
    """Through ingest, the bomb is refused with a clear message and no row or file is left."""
    assert "too large to process safely" in refused(session, storage, png_claiming(50_000, 50_000), "bomb.png")


def test_a_damaged_photo_is_refused_clearly(backend, session, storage):
    """A JPEG cut short is refused with a message, not an exception from the decoder."""
    message = refused(session, storage, tagged_jpeg((800, 600))[:2000], "cut.jpg")
    assert "could not be read" in message


def test_an_animation_is_refused(backend, session, storage):
    """An animated GIF would lose all but its first frame: it is refused instead."""
    out = io.BytesIO()
    frames = [Image.new("RGB", (10, 10), (80 * n, 0, 0)) for n in range(3)]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    assert "animation" in refused(session, storage, out.getvalue(), "wave.gif")


def test_a_still_gif_is_accepted_as_a_photo(backend, session, storage):
    """GIF is treated as an image: its first and only frame is re-encoded like any photo."""
    out = io.BytesIO()
    Image.new("P", (10, 10), 3).save(out, "GIF", comment=b"secret")
    stored = media.ingest(session, storage, io.BytesIO(out.getvalue()), "chart.gif", "image/gif")
    assert (stored.category, stored.media_type, stored.filename) == ("image", "image/jpeg", "chart.jpg")
    assert b"secret" not in storage.path(stored.sha256).read_bytes()


def test_heic_without_a_decoder_is_refused_with_advice(backend, session, storage, monkeypatch):
    """Where pillow-heif is not installed, a HEIC photo is refused with how to send it as JPEG."""
    monkeypatch.setattr(media, "HEIF", False)
    message = refused(session, storage, ftyp(b"heic", b"mif1", b"heic") + b"\x00" * 100, "IMG_0001.HEIC")
    assert "HEIC" in message and "JPEG" in message


# ---------------------------------------------------------------- what a file really is


@pytest.mark.parametrize(("head", "name", "media_type"), [
    (tagged_jpeg(), "photo.jpeg", "image/jpeg"),
    (png(), "photo", "image/png"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "photo.webp", "image/webp"),
    (ftyp(b"heic", b"mif1", b"heic"), "IMG_0001.HEIC", "image/heic"),
    (ftyp(b"mif1", b"mif1", b"heic"), "IMG_0001.heif", "image/heic"),
    (ftyp(b"mif1", b"mif1", b"avif"), "photo.avif", "image/avif"),
    (b"GIF89a\x01\x00\x01\x00", "chart.gif", "image/gif"),
    (PDF, "notes.pdf", "application/pdf"),
    (DOCX, "report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.doc", "application/msword"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "sums.xls", "application/vnd.ms-excel"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64", "talk.mp3", "audio/mpeg"),
    (b"\xff\xfb\x90\x64" + b"\x00" * 100, "talk.mp3", "audio/mpeg"),
    (b"\xff\xf1\x50\x80" + b"\x00" * 100, "talk.aac", "audio/aac"),
    (ftyp(b"M4A ", b"M4A ", b"mp42"), "talk.m4a", "audio/mp4"),
    (ftyp(b"isom", b"isom"), "talk.m4a", "audio/mp4"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "talk.wav", "audio/wav"),
    (b"OggS\x00\x02" + b"\x00" * 22 + b"\x01\x13OpusHead", "talk.opus", "audio/ogg"),
    (webm(2), "talk.webm", "audio/webm"),
    (ftyp(b"isom", b"isom", b"avc1"), "visit.mp4", "video/mp4"),
    (ftyp(b"mp42", b"mp42"), "visit.mp4", "video/mp4"),
    (ftyp(b"qt  ", b"qt  "), "visit.MOV", "video/quicktime"),
    (webm(1, 2), "visit.webm", "video/webm"),
])
def test_sniff_knows_accepted_types_by_their_content(head, name, media_type):
    """Each accepted type is recognised from its first bytes."""
    kind = media.sniff(head, name)
    assert kind.media_type == media_type
    assert kind.category == media.FORMATS[media_type][0]


def test_the_name_does_not_decide_the_type():
    """Content with no extension, or an extension that claims nothing, is still what its bytes say."""
    assert media.sniff(PDF, "notes").media_type == "application/pdf"
    assert media.sniff(PDF, "Report v2.3").media_type == "application/pdf"


def test_a_png_renamed_pdf_is_refused_naming_both(backend, session, storage):
    """The name claims a PDF, the bytes are a PNG."""
    message = refused(session, storage, png(), "care plan.pdf")
    assert "is a PNG image, not a PDF document" in message and "care plan.pdf" in message


@pytest.mark.parametrize("name", ["photo.html", "photo.exe", "photo.svg"])
def test_a_photo_named_as_something_refused_is_refused(backend, session, storage, name):
    """A real JPEG under a name that tells people to expect a web page, program or drawing."""
    assert "is a JPEG image, not" in refused(session, storage, tagged_jpeg(), name)


@pytest.mark.parametrize(("data", "name"), [
    (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "photo.jpg"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo.svg"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "logo.png"),
    (b"#!/bin/sh\nrm -rf /\n", "notes.pdf"),
    (b"MZ\x90\x00\x03\x00\x00\x00", "setup.doc"),
    (b"\x7fELF\x02\x01\x01", "tool"),
    (b"plain words", "notes.txt"),
])
def test_other_content_is_refused(backend, session, storage, data, name):
    """HTML, SVG, scripts and programs are refused whatever they are called."""
    message = refused(session, storage, data, name)
    assert "is not a file type the tracker accepts: photos (JPEG, PNG, WebP, HEIC)" in message


def test_an_empty_file_is_refused(backend, session, storage):
    """Zero bytes."""
    assert refused(session, storage, b"", "nothing.pdf") == "The file is empty."


def test_a_plain_zip_is_refused(backend, session, storage):
    """A ZIP that is not an office document."""
    message = refused(session, storage, office_zip({"notes.txt": b"hello", "photo.jpg": b"\xff\xd8\xff"}), "a.zip")
    assert "ZIP archive" in message


def test_a_document_with_macros_is_refused(backend, session, storage):
    """A macro-enabled Word file is refused with what to do instead."""
    data = office_zip({"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": b"<w:document/>",
                       "word/vbaProject.bin": b"\x00" * 10})
    assert "macros" in refused(session, storage, data, "report.docm")


def test_a_docx_is_accepted_as_a_document(backend, session, storage):
    """A Word document made with zipfile is stored as it is."""
    stored = media.ingest(session, storage, io.BytesIO(DOCX), "Reflective account.docx", "application/zip")
    assert stored.category == "document" and stored.media_type.endswith("wordprocessingml.document")
    assert storage.path(stored.sha256).read_bytes() == DOCX and stored.screen_sha256 is None
    assert session.get(Blob, stored.sha256).media_type == stored.media_type


def test_an_opendocument_text_is_accepted(backend, session, storage):
    """ODF names its type in the mimetype entry."""
    data = office_zip({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<office/>"})
    stored = media.ingest(session, storage, io.BytesIO(data), "notes.odt", None)
    assert stored.media_type == "application/vnd.oasis.opendocument.text"


def test_a_minimal_pdf_is_accepted_byte_for_byte(backend, session, storage):
    """Non-images are kept exactly as uploaded, and the same bytes twice make one row."""
    stored = media.ingest(session, storage, io.BytesIO(PDF), "notes", "text/html")
    assert (stored.media_type, stored.category, stored.filename) == ("application/pdf", "document", "notes.pdf")
    assert storage.path(stored.sha256).read_bytes() == PDF
    rows = blob_count(session)
    assert media.ingest(session, storage, io.BytesIO(PDF), "again.pdf", None).sha256 == stored.sha256
    assert blob_count(session) == rows


def test_an_old_office_file_needs_its_name(backend, session, storage):
    """OLE files are told apart only by extension; without one they are refused with advice."""
    assert "old-style Office" in refused(session, storage, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
                                         "installer.msi")


# ---------------------------------------------------------------- size limits


def test_an_oversized_upload_is_refused_while_streaming(backend, session, storage, monkeypatch):
    """The limit for the type is applied as bytes arrive: the rest is never read, nothing is kept."""
    monkeypatch.setitem(media.LIMITS, "document", 2 * 1024 * 1024)
    stream = CountingStream(PDF, 50 * 1024 * 1024)
    before = blob_count(session)
    with pytest.raises(InvalidInput, match="larger than the 2 MB allowed for documents"):
        media.ingest(session, storage, stream, "huge.pdf", "application/pdf")
    assert stream.taken <= 2 * 1024 * 1024 + HEAD + CHUNK
    assert blob_count(session) == before and leftovers(storage) == []
    assert [p for p in storage.root.rglob("*") if p.is_file()] == []


def test_each_category_has_its_own_limit(backend, session, storage, monkeypatch):
    """A photo over the photo limit is refused even though a video that size would be fine."""
    monkeypatch.setitem(media.LIMITS, "image", 1000)
    message = refused(session, storage, tagged_jpeg(), "photo.jpg")
    assert message == "The file is larger than the 1000 bytes allowed for photos."
    assert media.LIMITS["video"] == 500 * 1024 * 1024


def test_an_unknown_type_is_refused_after_its_first_bytes(backend, session, storage):
    """A large upload of a refused type is not read to the end first."""
    stream = CountingStream(b"<html>", 100 * 1024 * 1024)
    with pytest.raises(InvalidInput, match="not a file type"):
        media.ingest(session, storage, stream, "page.jpg", "image/jpeg")
    assert stream.taken <= HEAD and leftovers(storage) == []


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(("given", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\Windows\\system.ini", "system.ini"),
    ("con", "_con"),
    ("CON.pdf", "_CON.pdf"),
    ("lpt1", "_lpt1"),
    ("care\nplan\r\n.pdf", "care plan.pdf"),
    ("\u202egpj.exe", "gpj.exe"),
    ("tab\there\x00.pdf", "tab here.pdf"),
    ("", "file"),
    (None, "file"),
    ("..", "file"),
    ("   ", "file"),
    (".hidden", "hidden"),
    ("-rf", "rf"),
    ("Évaluation d'Élodie – été.docx", "Évaluation d'Élodie – été.docx"),
    ("日本語のメモ.pdf", "日本語のメモ.pdf"),
    ("<script>alert(1)</script>.pdf", "script.pdf"),
    ("<img src=x onerror=alert(1)>.pdf", "img src x onerror alert(1).pdf"),
    ("a:b*c?d|e\"f.pdf", "a b c d e f.pdf"),
])
def test_hostile_names_are_made_safe(given, safe):
    """No folders, no control or direction characters, no reserved device names, never empty."""
    assert media.safe_filename(given) == safe


def test_long_names_are_capped_keeping_their_extension():
    """1000 characters become at most 255 bytes, the extension intact, no character split."""
    assert media.safe_filename("a" * 1000 + ".pdf") == "a" * 251 + ".pdf"
    cut = media.safe_filename("é" * 1000 + ".pdf")
    assert len(cut.encode()) <= 255 and cut.endswith(".pdf") and set(cut[:-4]) == {"é"}


def test_stored_names_end_in_the_stored_type():
    """An extension for another format is replaced; anything else after a dot is kept."""
    assert media.safe_filename("IMG_0001.HEIC", "jpg") == "IMG_0001.jpg"
    assert media.safe_filename("Report v2.3", "pdf") == "Report v2.3.pdf"
    assert media.safe_filename("photo.jpeg", "jpg") == "photo.jpeg"
    assert media.safe_filename("", "pdf") == "file.pdf"


def test_hostile_names_are_sanitised_on_ingest(backend, session, storage):
    """The kept display name is the sanitised one, with the real type's extension."""
    names = {media.ingest(session, storage, io.BytesIO(PDF), name, None).filename
             for name in ("../../etc/passwd", "con", "a\nb", "x" * 1000, "")}
    assert names == {"passwd.pdf", "_con.pdf", "a b.pdf", "x" * 251 + ".pdf", "file.pdf"}
