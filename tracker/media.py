"""Uploaded files: what they really are, how big they may be, and photos cleaned of every bit of metadata.

The type of an upload is decided from its first bytes, never from its name or the browser's claim; a name
whose extension claims another type is refused, so nobody is misled by it later. Photos are decoded once,
turned upright and re-encoded with no metadata at all (no EXIF, GPS, XMP, IPTC, ICC, comments), because
they show care given to real people. The cleaned photo is what gets attached; a screen-size copy and a
thumbnail (always JPEG) are stored beside it as ordinary blobs, each linked to the photo it was
made from, recorded in the BlobRendition table that `derived_sha256` reads.
"""
import io
import uuid
import struct
import unicodedata
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from sqlmodel import Session

from .errors import InvalidInput
from .db import insert_new
from .models import Blob, BlobRendition
from .storage import MB, Storage, hold, record, spool

try:  # HEIC (iPhone and iPad photos) only where the optional pillow-heif package is installed
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - depends on the installation
    HEIF = False
else:  # pragma: no cover - depends on the installation
    register_heif_opener()
    HEIF = True

LIMITS = {"image": 25 * MB, "document": 50 * MB, "audio": 200 * MB, "video": 500 * MB}
NOUNS = {"image": "photos", "document": "documents", "audio": "audio recordings", "video": "videos"}
MAX_PIXELS = 60_000_000
# Long sides. Photos are kept at about 2,000 px: a photographed support plan stays readable, and a tablet can
# sync a day's photos over a weak connection. A large JPEG is decoded straight to about that size by libjpeg.
FULL, SCREEN, THUMB = 2048, 1600, 320
QUALITY = {"full": 88, "screen": 85, "thumb": 80}
ACCEPTED = "photos (JPEG, PNG, WebP, HEIC), PDF and office documents, audio and video"
PILLOW_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "HEIF", "AVIF"]  # no other decoder ever sees an upload

# Pillow refuses images over twice this outright and only warns above it: both are refusals here.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Kind:
    """What an upload really is."""

    category: str  # "image", "document", "audio" or "video"
    media_type: str
    extension: str


@dataclass(frozen=True)
class Rendition:
    """One encoded size of a cleaned photo."""

    data: bytes
    media_type: str
    width: int
    height: int


@dataclass(frozen=True)
class ProcessedImage:
    """A photo re-encoded without metadata at full, screen and thumbnail size."""

    full: Rendition
    screen: Rendition
    thumb: Rendition


@dataclass(frozen=True)
class Ingested:
    """A stored upload: the hash to attach, and for photos the hashes of the derived sizes."""

    sha256: str
    size: int
    media_type: str
    filename: str
    category: str
    screen_sha256: str | None = None
    thumb_sha256: str | None = None


# media type: (category, label for messages, extensions, the first being the one given to stored names)
FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "image/jpeg": ("image", "a JPEG image", ("jpg", "jpeg", "jpe", "jfif")),
    "image/png": ("image", "a PNG image", ("png",)),
    "image/webp": ("image", "a WebP image", ("webp",)),
    "image/heic": ("image", "a HEIC photo", ("heic", "heif", "hif")),
    "image/avif": ("image", "an AVIF image", ("avif",)),
    "image/gif": ("image", "a GIF image", ("gif",)),
    "application/pdf": ("document", "a PDF document", ("pdf",)),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
        ("document", "a Word document", ("docx",)),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
        ("document", "an Excel spreadsheet", ("xlsx",)),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation":
        ("document", "a PowerPoint presentation", ("pptx",)),
    "application/vnd.oasis.opendocument.text": ("document", "an OpenDocument text", ("odt",)),
    "application/vnd.oasis.opendocument.spreadsheet": ("document", "an OpenDocument spreadsheet", ("ods",)),
    "application/vnd.oasis.opendocument.presentation": ("document", "an OpenDocument presentation", ("odp",)),
    "application/msword": ("document", "an old-style Word document", ("doc",)),
    "application/vnd.ms-excel": ("document", "an old-style Excel spreadsheet", ("xls",)),
    "application/vnd.ms-powerpoint": ("document", "an old-style PowerPoint presentation", ("ppt",)),
    "audio/mpeg": ("audio", "an MP3 recording", ("mp3",)),
    "audio/aac": ("audio", "an AAC recording", ("aac",)),
    "audio/mp4": ("audio", "an M4A recording", ("m4a", "m4b", "mp4")),
    "audio/wav": ("audio", "a WAV recording", ("wav", "wave")),
    "audio/ogg": ("audio", "an Ogg recording", ("ogg", "oga", "opus")),
    "audio/flac": ("audio", "a FLAC recording", ("flac",)),
    "audio/amr": ("audio", "an AMR recording", ("amr",)),
    "audio/webm": ("audio", "a WebM recording", ("webm", "weba")),
    "audio/x-matroska": ("audio", "a Matroska recording", ("mka", "mkv")),
    "video/mp4": ("video", "an MP4 video", ("mp4", "m4v")),
    "video/quicktime": ("video", "a QuickTime video", ("mov", "qt")),
    "video/3gpp": ("video", "a 3GP video", ("3gp", "3g2")),
    "video/webm": ("video", "a WebM video", ("webm",)),
    "video/x-matroska": ("video", "a Matroska video", ("mkv",)),
    "video/ogg": ("video", "an Ogg video", ("ogv", "ogg")),
}
# Extensions that claim a type the tracker never accepts: content of an accepted type under such a name
# is refused too, since whoever opens it later is told by the name to expect something else.
REFUSED_EXTENSIONS = {
    **dict.fromkeys(("html", "htm", "xhtml", "shtml", "mht", "mhtml"), "a web page"),
    **dict.fromkeys(("svg", "svgz"), "an SVG drawing"),
    **dict.fromkeys(("js", "mjs", "php", "py", "pl", "rb", "sh", "bash", "ps1", "vbs", "bat", "cmd"), "a script"),
    **dict.fromkeys(("exe", "dll", "msi", "com", "scr", "jar", "apk", "app", "bin", "elf"), "a program"),
    **dict.fromkeys(("zip", "7z", "rar", "gz", "tgz", "tar", "bz2", "xz"), "an archive"),
    **dict.fromkeys(("txt", "csv", "xml", "json", "rtf"), "a text file"),
}
EXTENSIONS: dict[str, set[str]] = {}
for _type, (_category, _label, _extensions) in FORMATS.items():
    for _extension in _extensions:
        EXTENSIONS.setdefault(_extension, set()).add(_type)
ZIP, OLE = "application/zip", "application/x-ole-storage"  # containers, told apart after spooling
AUDIO_EXTENSIONS = {"m4a", "m4b", "aac", "weba", "mka", "oga", "opus"}


# ---------------------------------------------------------------- names


def extension_of(name: str) -> str:
    """Return a name's extension, lower case without the dot, or "" when it has none."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem.strip() or not extension.isalnum() or len(extension) > 10:
        return ""
    return extension.lower()


WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
ALLOWED_PUNCTUATION = set(".-_()',&+")


def _clean_characters(name: str) -> str:
    """Keep letters, marks, digits, dashes, spaces and a little punctuation; drop control and format characters.

    Format characters go without trace (a right-to-left override can make "gpj.exe" look like "exe.jpg");
    any other character becomes a space, so words stay apart.
    """
    kept = []
    for char in unicodedata.normalize("NFC", name):
        kind = unicodedata.category(char)
        if kind[0] in "LMN" or kind == "Pd" or char in ALLOWED_PUNCTUATION:
            kept.append(char)
        elif kind not in ("Cf", "Cn", "Co", "Cs"):
            kept.append(" ")
    return " ".join("".join(kept).split())


def _cap(stem: str, suffix: str, limit: int = 255) -> str:
    """Shorten a stem so stem + suffix fits in `limit` UTF-8 bytes, never splitting a character."""
    room = limit - len(suffix.encode())
    while len(stem.encode()) > room:
        stem = stem[:-1]
    return stem.rstrip(" .") + suffix


def safe_filename(filename: str | None, extension: str = "") -> str:
    """Return a display name safe anywhere: no folders, no control characters, at most 255 bytes, never empty.

    With `extension`, the name is made to end in it: a known extension of another format is replaced,
    anything else after a dot ("Report v2.3") is kept as part of the name.
    """
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _clean_characters(base).strip(" .").lstrip("-")
    current = extension_of(name)
    stem, suffix = (name[:-len(current) - 1], name[-len(current) - 1:]) if current else (name, "")
    if extension and current.lower() not in SPELLINGS.get(extension, {extension}):
        if current not in EXTENSIONS and current not in REFUSED_EXTENSIONS:
            stem += suffix
        suffix = f".{extension}"
    stem = stem.strip(" .") or "file"
    if stem.split(".")[0].strip().lower() in WINDOWS_RESERVED:
        stem = "_" + stem  # "con.pdf" and friends cannot be saved on Windows
    return _cap(stem, suffix)


# a stored name's extension -> the spellings of the same format a person's name may keep ("photo.jpeg")
SPELLINGS = {extensions[0]: set(extensions) for _, _, extensions in FORMATS.values()}


# ---------------------------------------------------------------- sniffing


def _refuse_unknown(name: str) -> InvalidInput:
    """Return the refusal for content of a type the tracker does not take."""
    return InvalidInput(f"“{name}” is not a file type the tracker accepts: {ACCEPTED}.", field="file")


def _kind(media_type: str) -> Kind:
    """Return the Kind for a known media type."""
    category, _, extensions = FORMATS[media_type]
    return Kind(category, media_type, extensions[0])


def _ftyp_brands(head: bytes) -> list[bytes]:
    """Return an ISO media file's major and compatible brands."""
    size = min(struct.unpack(">I", head[:4])[0], len(head))
    return [head[8:12]] + [head[i:i + 4] for i in range(16, size - 3, 4)]


def _iso_media(head: bytes, extension: str) -> str | None:
    """Tell apart the formats that share the ISO box layout: HEIC, AVIF, M4A, MP4, MOV, 3GP."""
    brands = _ftyp_brands(head)
    major = brands[0]
    if b"avif" in brands or b"avis" in brands:
        return "image/avif"
    if major in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
        return "image/heic"
    if major in (b"M4A ", b"M4B ", b"M4P ", b"F4A "):
        return "audio/mp4"
    if major == b"qt  ":
        return "video/quicktime"
    if major.startswith((b"3gp", b"3g2")):
        return "video/3gpp"
    if major in (b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8", b"mp41", b"mp42", b"avc1",
                 b"M4V ", b"M4VH", b"M4VP", b"dash", b"MSNV", b"XAVC", b"f4v ", b"mmp4", b"NDAS"):
        # Generic brands carry either; only the name can say a sound-only file is audio.
        return "audio/mp4" if extension in AUDIO_EXTENSIONS else "video/mp4"
    return None


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """Read an EBML variable-length integer; return it (-1 for "unknown size") and the next position."""
    first = data[pos]
    length = 9 - first.bit_length() if first else 9
    if length > 8 or pos + length > len(data):
        raise ValueError("not EBML")
    value = int.from_bytes(data[pos:pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
        if value == (1 << (7 * length)) - 1:
            value = -1
    return value, pos + length


def _ebml_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """List the (id, start, end) of the EBML elements between two positions, as far as the data goes."""
    children, pos = [], start
    while pos < min(end, len(data)):
        try:
            element, pos = _vint(data, pos, keep_marker=True)
            size, pos = _vint(data, pos, keep_marker=False)
        except ValueError:
            break  # the head ends inside an element header, or what follows is not EBML
        stop = len(data) if size < 0 else pos + size
        children.append((element, pos, stop))
        if size < 0:
            break  # an element of unknown size runs to the end of its parent
        pos = stop
    return children


def _matroska(head: bytes) -> tuple[str, set[int]]:
    """Return a WebM/Matroska file's doctype and the track types (1 video, 2 audio) its start lists."""
    doctype, types = "", set()
    for element, start, end in _ebml_children(head, 0, len(head)):
        if element == 0x1A45DFA3:
            for child, child_start, child_end in _ebml_children(head, start, end):
                if child == 0x4282:
                    doctype = head[child_start:child_end].decode("ascii", "replace")
        elif element == 0x18538067:
            for child, child_start, child_end in _ebml_children(head, start, end):
                if child == 0x1654AE6B:
                    types |= _track_types(head, child_start, child_end)
    return doctype, types


def _track_types(head: bytes, start: int, end: int) -> set[int]:
    """Return the TrackType of each TrackEntry in a Tracks element."""
    types = set()
    for entry, entry_start, entry_end in _ebml_children(head, start, end):
        if entry == 0xAE:
            for field, field_start, field_end in _ebml_children(head, entry_start, entry_end):
                if field == 0x83 and field_end <= len(head):
                    types.add(int.from_bytes(head[field_start:field_end], "big"))
    return types


def _webm(head: bytes, extension: str) -> str | None:
    """Tell WebM/Matroska audio from video by the tracks it lists, or by its name if they come later."""
    try:
        doctype, types = _matroska(head)
    except (ValueError, IndexError):
        return None
    if doctype not in ("webm", "matroska"):
        return None
    audio = 2 in types and 1 not in types if types else extension in AUDIO_EXTENSIONS
    return {("webm", True): "audio/webm", ("webm", False): "video/webm",
            ("matroska", True): "audio/x-matroska", ("matroska", False): "video/x-matroska"}[doctype, audio]


def _mpeg_audio(head: bytes) -> str | None:
    """Recognise MP3 and AAC (ADTS) by their frame header."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if head[1] & 0xF6 == 0xF0:
        return "audio/aac"
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return "audio/mpeg" if version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3 else None


def _after_id3(head: bytes) -> str:
    """Return what follows an ID3 tag: MP3 usually, sometimes AAC or FLAC."""
    size = 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(head[6:10]))
    rest = head[size:]
    if rest.startswith(b"fLaC"):
        return "audio/flac"
    return _mpeg_audio(rest) or "audio/mpeg"


def _by_magic(head: bytes, extension: str) -> str | None:
    """Return the media type the first bytes show, or None for anything the tracker does not take."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if head[8:12] == b"WEBP" else "audio/wav"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return _iso_media(head, extension)
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return OLE
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _webm(head, extension)
    if head.startswith(b"OggS"):
        return "video/ogg" if b"\x80theora" in head[:4096] else "audio/ogg"
    if head.startswith(b"ID3"):
        return _after_id3(head)
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    return _mpeg_audio(head)


OOXML = {"word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation"}
ODF = {"application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
       "application/vnd.oasis.opendocument.presentation"}


def _office(source: str | Path | BinaryIO, name: str) -> str:
    """Return the office document type of a ZIP file, refusing any other ZIP (nothing is extracted)."""
    try:
        with zipfile.ZipFile(source) as archive:
            names = archive.namelist()
            if any(n.lower().endswith("vbaproject.bin") for n in names):
                raise InvalidInput(f"“{name}” contains macros, which the tracker does not accept: "
                                   "save it as an ordinary document (.docx, .xlsx or .pptx) or as PDF.", field="file")
            if "[Content_Types].xml" in names:
                for folder, media_type in OOXML.items():
                    if any(n.startswith(folder) for n in names):
                        return media_type
            if "mimetype" in names:
                with archive.open("mimetype") as entry:  # read only a little: the entry could be a bomb
                    declared = entry.read(100).decode("ascii", "replace").strip()
                if declared in ODF:
                    return declared
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise InvalidInput(f"“{name}” could not be read as an office document: it may be damaged. "
                           "Save it again, or as PDF, and upload that.", field="file") from None
    raise InvalidInput(f"“{name}” is a ZIP archive, which the tracker does not accept: upload the files in it "
                       f"one by one ({ACCEPTED}).", field="file")


def _legacy_office(name: str, extension: str) -> str:
    """Name an old-style (OLE) Office file's type from its extension, the only thing that tells them apart."""
    legacy = {"doc": "application/msword", "xls": "application/vnd.ms-excel", "ppt": "application/vnd.ms-powerpoint"}
    if extension in legacy:
        return legacy[extension]
    raise InvalidInput(f"“{name}” is an old-style Office file without its .doc, .xls or .ppt name: save it as "
                       ".docx, .xlsx, .pptx or PDF and upload that.", field="file")


def _claimed(extension: str) -> str | None:
    """Return what a name's extension claims the file is, or None when it claims nothing we know."""
    if extension in REFUSED_EXTENSIONS:
        return REFUSED_EXTENSIONS[extension]
    labels = [(extensions[0] != extension, label) for _, label, extensions in FORMATS.values()
              if extension in extensions]
    return min(labels)[1] if labels else None  # the format it is the usual extension of comes first


def _check_claim(kind: Kind, name: str, extension: str) -> None:
    """Refuse a name whose extension claims something other than what the content is."""
    claimed = _claimed(extension)
    if claimed is None or kind.media_type in EXTENSIONS.get(extension, ()):
        return
    actual = FORMATS[kind.media_type][1]
    raise InvalidInput(f"“{name}” is {actual}, not {claimed}: check it is the file you meant, and if it is, "
                       f"rename it to end in .{kind.extension} and upload it again.", field="file")


def _identify(head: bytes, name: str, path: str | Path | None) -> Kind:
    """Return what the content is; a ZIP is looked into only when its whole file is at hand."""
    if not head:
        raise InvalidInput("The file is empty.", field="file")
    extension = extension_of(name)
    media_type = _by_magic(head, extension)
    if media_type is None:
        raise _refuse_unknown(name)
    if media_type == OLE:
        media_type = _legacy_office(name, extension)
    if media_type == ZIP:
        if path is None:
            return Kind("document", ZIP, "zip")
        media_type = _office(path, name)
    kind = _kind(media_type)
    _check_claim(kind, name, extension)
    return kind


def sniff(head: bytes, filename: str, path: str | Path | None = None) -> Kind:
    """Decide what a file really is from its first bytes (and, for ZIP-based documents, its entry list).

    `path` is the whole file, needed only to look inside ZIP-based office documents; without it the
    head itself is tried, which works when the head is the whole file.
    """
    return _identify(head, safe_filename(filename), path if path is not None else io.BytesIO(head))


def _limit_for(name: str) -> Callable[[bytes], tuple[int, str]]:
    """Return the spool's check on an upload's first bytes: refuse unknown types, give the size limit."""
    def check(head: bytes) -> tuple[int, str]:
        category = _identify(head, name, None).category
        return LIMITS[category], NOUNS[category]
    return check


# ---------------------------------------------------------------- photos


def _too_large(pixels: int | None = None) -> InvalidInput:
    """Return the refusal for an image with too many pixels to decode safely."""
    detail = f" ({pixels / 1e6:.0f} megapixels; the most is {MAX_PIXELS / 1e6:.0f})" if pixels else ""
    return InvalidInput(f"This image is too large to process safely{detail}. Resize it or take the photo at a "
                        "lower resolution, then upload it again.", field="file")


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """Return a size scaled down (never up) so its longer side is at most long_side."""
    width, height = size
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode(source: Image.Image) -> Image.Image:
    """Decode a photo; libjpeg decodes a large JPEG at 1/2, 1/4 or 1/8, the smallest still covering the screen size."""
    if source.format == "JPEG":
        source.draft(None, _fit(source.size, SCREEN))
    source.load()
    return source


def _upright(image: Image.Image) -> Image.Image:
    """Turn a picture the way its camera was held (the EXIF orientation), in place."""
    ImageOps.exif_transpose(image, in_place=True)  # in place: one transient copy, not a second picture
    return image


def _srgb(image: Image.Image) -> Image.Image:
    """Convert colours to sRGB when the image carries another ICC profile; the profile itself is never kept."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return image
        return ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: keep the pixels as they are


def _normalise(image: Image.Image) -> Image.Image:
    """Bring any mode to RGB or L, or RGBA or LA when there is real transparency."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")  # 16-bit greys to 8-bit
    elif image.mode not in ("RGB", "L", "RGBA", "LA"):
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert(image.mode[:-1])  # an alpha channel that hides nothing
    return image


def _encode(image: Image.Image, quality: int, *, png: bool = False) -> Rendition:
    """Encode with no metadata whatever: info is emptied so Pillow has nothing to copy into the file."""
    image.info = {}
    out = io.BytesIO()
    if png:
        image.save(out, "PNG", optimize=False)
    else:
        image.save(out, "JPEG", quality=quality, subsampling="4:2:0", optimize=False, progressive=False)
    return Rendition(out.getvalue(), "image/png" if png else "image/jpeg", *image.size)


def _on_white(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white, for the JPEG screen and thumbnail copies."""
    if image.mode not in ("RGBA", "LA"):
        return image
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _shrink(image: Image.Image, long_side: int) -> Image.Image:
    """Scale down: a fast whole-number box reduction first, then bicubic for the last, smaller step."""
    size = _fit(image.size, long_side)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=1.0)


def _open(path: str | Path) -> Image.Image:
    """Open a photo, reading only its header, and refuse one that claims too many pixels before decoding."""
    image = Image.open(path, formats=PILLOW_FORMATS)
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise _too_large(width * height)
    if image.format in ("GIF", "PNG", "WEBP") and getattr(image, "n_frames", 1) > 1:
        image.close()
        raise InvalidInput("This image is an animation; the tracker keeps photos as still images. "
                           "Upload a still image, or the animation as a video.", field="file")
    return image


def _prepared(path: str | Path) -> Image.Image:
    """Decode once, then bring to full size before turning upright, so the smaller picture is the one turned."""
    try:
        with _open(path) as source:  # leaving the block closes the file; the decoded pixels stay
            picture = _normalise(_decode(source))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large() from None
    except UnidentifiedImageError:
        raise InvalidInput("This photo could not be read: it may be damaged or in a format the tracker "
                           "cannot open. Save it as JPEG or PNG and upload that.", field="file") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, ZeroDivisionError):
        # Pillow's decoders raise all of these on damaged or hostile files.
        raise InvalidInput("This photo could not be read: it may be damaged or incomplete. "
                           "Take or export it again and upload that.", field="file") from None
    return _srgb(_upright(_shrink(picture, FULL)))


def _renditions(full: Image.Image) -> ProcessedImage:
    """Encode the full size, then make the screen copy from it and the thumbnail from the screen copy."""
    encoded = _encode(full, QUALITY["full"], png=full.mode in ("RGBA", "LA"))
    screen = _shrink(_on_white(full), SCREEN)
    del full  # each size is made from the one before, so one big picture at most is alive at a time
    thumb = _shrink(screen, THUMB)
    return ProcessedImage(encoded, _encode(screen, QUALITY["screen"]), _encode(thumb, QUALITY["thumb"]))


def process_image(path: str | Path) -> ProcessedImage:
    """Decode a photo once, turn it upright and re-encode it at three sizes with no metadata at all."""
    return _renditions(_prepared(path))


# ---------------------------------------------------------------- storing


def derived_sha256(session: Session, sha256: str, size: str) -> str | None:
    """Return the hash of a photo's "screen" or "thumb" copy, or None if it has none."""
    row = session.get(BlobRendition, (sha256, size)) if size in ("screen", "thumb") else None
    return row.sha256 if row else None


def _link(session: Session, original: str, size: str, copy: str) -> None:
    """Record which blob is a photo's copy at a size (the same photo again, even at the same moment, finds its link
    in place)."""
    insert_new(session, BlobRendition, {"original_sha256": original, "size": size, "sha256": copy})


def _store_bytes(session: Session, storage: Storage, data: bytes, media_type: str) -> Blob:
    """Store encoded bytes as a blob, however many times they come."""
    with spool(io.BytesIO(data), storage.spool_dir, len(data)) as done:
        storage.put_file(done.path, done.sha256)
        return record(session, done.sha256, done.size, media_type)


def _store_copies(session: Session, storage: Storage, processed: ProcessedImage, original: str) -> tuple[Blob, Blob]:
    """Store a photo's screen copy and thumbnail, each linked to the photo they were made from."""
    screen = _store_bytes(session, storage, processed.screen.data, "image/jpeg")
    thumb = _store_bytes(session, storage, processed.thumb.data, "image/jpeg")
    _link(session, original, "screen", screen.sha256)
    _link(session, original, "thumb", thumb.sha256)
    return screen, thumb


def add_renditions(session: Session, storage: Storage, path: str | Path, original: str) -> None:
    """Make and store the screen copy and thumbnail of a photo kept as it arrived, already cleaned by its sender.

    Raises InvalidInput when the photo cannot be decoded; the photo itself is kept either way.
    """
    _store_copies(session, storage, process_image(path), original)


def _ingest_image(session: Session, storage: Storage, path: Path, name: str, kind: Kind) -> Ingested:
    """Clean a photo and store it with its screen and thumbnail copies."""
    if kind.media_type == "image/heic" and not HEIF:
        raise InvalidInput(f"“{name}” is a HEIC photo, which the tracker cannot open yet: on the iPad or iPhone "
                           "export or share it as JPEG (or set Settings › Camera › Formats to Most Compatible) "
                           "and upload that.", field="file")
    processed = process_image(path)
    original = _store_bytes(session, storage, processed.full.data, processed.full.media_type)
    screen, thumb = _store_copies(session, storage, processed, original.sha256)
    extension = "png" if processed.full.media_type == "image/png" else "jpg"
    return Ingested(original.sha256, original.size, original.media_type, safe_filename(name, extension),
                    "image", screen.sha256, thumb.sha256)


def ingest(session: Session, storage: Storage, stream: BinaryIO, filename: str | None,
           declared_type: str | None = None, *, holder: uuid.UUID | None = None) -> Ingested:
    """Take an upload: spool it within its type's size limit, check what it is, clean photos, store it.

    `declared_type` (the browser's claim) is accepted for the callers' convenience and deliberately ignored.
    `holder` is the person who sent the bytes: they may attach the stored file even where others already have.
    """
    del declared_type
    name = safe_filename(filename)
    with spool(stream, storage.spool_dir, max(LIMITS.values()), limit=_limit_for(name)) as upload:
        kind = _identify(upload.head, name, upload.path)
        if kind.category == "image":
            stored = _ingest_image(session, storage, upload.path, name, kind)
        else:
            storage.put_file(upload.path, upload.sha256)
            blob = record(session, upload.sha256, upload.size, kind.media_type)
            stored = Ingested(blob.sha256, blob.size, kind.media_type, safe_filename(name, kind.extension),
                              kind.category)
    hold(session, stored.sha256, holder)
    return stored
