"""The `tracker` command line: set up a centre, load the demo, manage people, print the unit, serve."""
import functools
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session, select

from . import clock
from .audit import SYSTEM
from .audit import verify as verify_chain
from .db import database_url, ensure_secret_key, instance_path, make_engine, transaction, upgrade
from .errors import Refusal
from .models import Role, Unit
from .specpacks import loader


class Context:
    """What every command needs: where the instance folder and the database are."""

    def __init__(self, instance: Path, url: str | None):
        self.instance = instance
        self.url = database_url(instance, url)

    def engine(self):  # noqa: ANN201
        """Return an engine on the centre's database."""
        self.instance.mkdir(parents=True, exist_ok=True)
        return make_engine(self.url)


def friendly(command: Callable) -> Callable:
    """Report refusals and database problems as one clear line, never a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Refusal as refusal:
            raise click.ClickException(refusal.message) from None
        except (OperationalError, ProgrammingError) as exc:
            raise click.ClickException(
                f"The database is not ready ({exc.orig.__class__.__name__}: {str(exc.orig).strip()}). "
                "Run `tracker init` first, or check DATABASE_URL.") from None

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--instance", type=click.Path(file_okay=False, path_type=Path), envvar="TRACKER_INSTANCE",
              default=None, help="Folder for the database, media and config (default: ./instance of the project).")
@click.option("--database-url", envvar="DATABASE_URL", default=None,
              help="Database URL (default: SQLite in the instance folder; PostgreSQL for larger centres).")
@click.pass_context
def main(ctx: click.Context, instance: Path | None, database_url: str | None) -> None:
    """Portfolio evidence tracker for the City & Guilds 3085-02 Award (Unit 002)."""
    ctx.obj = Context(instance or instance_path(), database_url)


pass_context = click.make_pass_decorator(Context)


def _prepare(ctx: Context):  # noqa: ANN202
    """Migrate the database to the newest schema and load the bundled spec packs."""
    engine = ctx.engine()
    ensure_secret_key(ctx.instance)
    upgrade(engine)
    with transaction(engine) as session:
        results = [loader.load(session, document) for document in loader.bundled()]
    return engine, results


@main.command()
@pass_context
@friendly
def init(ctx: Context) -> None:
    """Create or upgrade the database and load the bundled qualification (idempotent)."""
    _, results = _prepare(ctx)
    click.echo(f"Database ready: {ctx.url}")
    for result in results:
        click.echo(f"Spec pack {result}")


@main.command()
@pass_context
@friendly
def demo(ctx: Context) -> None:
    """Set up the database and load the demo centre; print how to sign in."""
    from . import demo as demo_centre
    from .storage import LocalStorage

    engine, _ = _prepare(ctx)
    with transaction(engine) as session:
        if demo_centre.is_loaded(session):
            click.echo("The demo centre is already loaded.")
            centre = demo_centre.logins(session)
        else:
            centre = demo_centre.load_demo(session, LocalStorage(ctx.instance / "media"), clock.today())
            click.echo("Demo centre loaded.")
    _print_logins(centre)


def _print_logins(centre) -> None:  # noqa: ANN001
    from .demo import DEMO_PASSWORD

    click.echo(f"\nSign in with any of these (password: {DEMO_PASSWORD}):")
    for login in centre.logins:
        click.echo(f"  {login.email:<34} {', '.join(login.roles):<28} {login.hint}")


@main.group()
def user() -> None:
    """Manage people's accounts."""


@user.command("add")
@click.argument("email")
@click.option("--name", required=True, help="The person's full name.")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice([r.value for r in Role]),
              help="A role to give (repeat for several).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The password (asked for if not given; at least 10 characters).")
@pass_context
@friendly
def user_add(ctx: Context, email: str, name: str, roles: tuple[str, ...], password: str) -> None:
    """Add a person with one or more roles."""
    from .services import people

    with transaction(ctx.engine()) as session:
        person = people.create_user(session, SYSTEM, {"email": email, "name": name, "password": password,
                                                      "roles": list(roles)})
    click.echo(f"Added {person.name} <{person.email}> as {', '.join(roles)}.")


@main.command()
@click.option("--unit", default="002", show_default=True, help="The unit's code.")
@click.option("--pack", default="cg-3085", show_default=True, help="The spec pack the unit belongs to.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
@friendly
def criteria(ctx: Context, unit: str, pack: str, as_json: bool) -> None:
    """Print a unit's learning outcomes, assessment criteria and range."""
    with Session(ctx.engine()) as session:
        row = session.exec(select(Unit).where(Unit.pack_key == pack, Unit.code == unit)).first()
        if row is None:
            raise click.ClickException(f"No unit {unit} in spec pack {pack}. Run `tracker init` to load it.")
        data = loader.unit_json(row)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"Unit {data['unit']}: {data['title']}")
    for outcome in data["outcomes"]:
        click.echo(f"\n{outcome['number']}  {outcome['title']}")
        for c in outcome["criteria"]:
            click.echo(f"  {c['code']:<5}{c['text'].replace(chr(10), chr(10) + ' ' * 7)}")
            for group in c["range"]:
                items = "; ".join(group["items"]) or group["text"]
                click.echo(f"       range, {group['term']}: {items}")


@main.group()
def pack() -> None:
    """Load qualification spec packs."""


@pack.command("load")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_context
@friendly
def pack_load(ctx: Context, path: Path) -> None:
    """Load a spec pack file, or a corrected version of one already loaded."""
    engine = ctx.engine()
    upgrade(engine)
    with transaction(engine) as session:
        result = loader.load(session, loader.read(path))
    click.echo(f"Spec pack {result}")


@main.command()
@click.argument("candidate")
@click.option("--unit", default="002", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
@friendly
def readiness(ctx: Context, candidate: str, unit: str, as_json: bool) -> None:
    """Show a candidate's readiness for sign-off (by email or registration number)."""
    from .services import assessment, people
    from .services.evidence import unit_for

    with Session(ctx.engine()) as session:
        found = people.find_candidate(session, candidate)
        state = assessment.readiness_for(session, found, unit_for(session, found, unit))
    if as_json:
        click.echo(json.dumps(state.as_dict(), indent=2))
        return
    met = state.counts.get("met", 0)
    click.echo(f"Unit {unit}: {met} of {len(state.criteria)} criteria met.")
    if state.signed_off_on:
        click.echo(f"Signed off on {state.signed_off_on:%d %B %Y}.")
    elif state.ready:
        click.echo("Ready for the assessor to sign off.")
    for blocker in state.blockers:
        click.echo(f"- {blocker.message}")


@main.group()
def audit() -> None:
    """Check the audit log."""


@audit.command("verify")
@pass_context
@friendly
def audit_verify(ctx: Context) -> None:
    """Check every link of the audit chain; report the first broken one (exit status 1)."""
    with Session(ctx.engine()) as session:
        result = verify_chain(session)
    if not result.intact:
        raise click.ClickException(f"The audit log has been tampered with: {result.reason} "
                                   f"(checked {result.entries} entries).")
    click.echo(f"Audit log intact: {result.entries} entries, every link checks out.")


@main.command("backup")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="A new or empty folder to write the backup into.")
@pass_context
@friendly
def backup_command(ctx: Context, out: Path) -> None:
    """Write a consistent backup of the database, media and config into a folder, while the tracker runs."""
    from .backup import DUMPS, KINDS, backup

    manifest = backup(ctx.instance, ctx.url, out)
    sizes = {f["path"]: f["size"] for f in manifest["files"]}
    dump, media = DUMPS[manifest["database"]], manifest["media"]
    click.echo(f"Backup written to {Path(out).absolute()}")
    click.echo(f"  database  {KINDS[manifest['database']]}, revision {manifest['alembic_revision']}: {dump}, "
               f"{_size(sizes[dump])}")
    if media["included"]:
        click.echo(f"  media     {media['files']} files, {_size(media['bytes'])} (media/)")
    else:
        click.echo(f"  media     not included: they stay in the S3 bucket {media['bucket']}")
    click.echo("  config    config.py (it holds the secret key: keep the backup private)" if manifest["config_included"]
               else "  config    none (the instance has no config.py)")
    click.echo(f"  records   {_records(manifest['counts'])}; audit head {manifest['audit_head']['hash'][:12]}")
    click.echo(f"  total     {_size(sum(sizes.values()))} in {len(sizes) + 1} files")
    if media.get("damaged"):
        raise click.ClickException(f"{len(media['damaged'])} media file(s) in the store do not match their sha256 "
                                   f"and were left out of the backup: {', '.join(media['damaged'])}.")


def _size(count: float) -> str:
    """Return a number of bytes as people read it."""
    unit = "bytes"
    for larger in ("KB", "MB", "GB"):
        if count < 1024:
            break
        count, unit = count / 1024, larger
    return f"{count} bytes" if unit == "bytes" else f"{count:.1f} {unit}"


def _records(counts: dict[str, int]) -> str:
    """Return the key row counts of a backup or a restored database in words."""
    return (f"{counts['candidate']} candidates, {counts['evidence']} pieces of evidence, "
            f"{counts['auditentry']} audit entries")


@main.command("restore")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="Restore without asking for confirmation.")
@pass_context
@friendly
def restore_command(ctx: Context, folder: Path, yes: bool) -> None:
    """Restore a backup made by `tracker backup`, replacing this centre's database (asks first)."""
    from sqlalchemy.engine import make_url

    from .backup import KINDS, plan_restore, restore

    plan = plan_restore(ctx.instance, ctx.url, folder)
    made = plan.manifest
    click.echo(f"Backup made {made['created_at']} by tracker {made.get('tracker_version', '?')}: "
               f"{KINDS[made['database']]} database at revision {made['alembic_revision']}, {_records(made['counts'])}.")
    click.echo(f"Restoring replaces the database {make_url(ctx.url).render_as_string(hide_password=True)} "
               "with the backup's. Stop the tracker first.")
    if not yes and not click.confirm("Replace the current data with this backup?"):
        click.echo("Not restored: nothing was changed.")
        sys.exit(1)
    report = restore(plan)
    migrated = "" if report.upgraded_to == report.revision else f", migrated to {report.upgraded_to}"
    click.echo(f"Database restored: revision {report.revision}{migrated}; {_records(report.counts)}.")
    click.echo(_restored_media(report.media))
    click.echo({"restored": f"Config: config.py restored into {ctx.instance}.",
                "kept": f"Config: kept the current {ctx.instance / 'config.py'}; the backup's copy stays in "
                        f"{Path(folder) / 'config.py'}.",
                "absent": "Config: the backup has no config.py."}[report.config])
    if not report.chain.intact:
        raise click.ClickException(f"The restored audit log does not verify: {report.chain.reason} "
                                   f"(checked {report.chain.entries} entries).")
    if not report.head_matches:
        raise click.ClickException("The restored audit log's head is not the one the backup recorded: "
                                   "the database may not be the one the backup describes.")
    click.echo(f"Audit log intact: {report.chain.entries} entries, every link checks out.")


def _restored_media(media: dict) -> str:
    """Say what a restore did with the media."""
    if not media["included"]:
        return f"Media: not part of the backup; they stay in the S3 bucket {media['bucket']}."
    return (f"Media: {media['copied']} files copied back, {media['replaced']} damaged files replaced, "
            f"{media['present']} already there.")


@main.command("export")
@click.argument("candidate")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The zip file to write.")
@click.option("--centre", default="", help="The sending centre's name, as the pack records it.")
@pass_context
@friendly
def export_pack(ctx: Context, candidate: str, out: Path, centre: str) -> None:
    """Write a candidate's portfolio pack (by id, email or registration number) to a zip file."""
    from .services import pack
    from .storage import storage_from_config

    storage = storage_from_config({}, ctx.instance)
    with Session(ctx.engine()) as session:
        found = pack.find(session, candidate)
        tmp = out.with_name(out.name + ".part")
        try:
            with open(tmp, "wb") as stream:
                data = pack.export(session, storage, found, stream, centre)
            tmp.replace(out)  # a half-written pack never sits under the real name
        finally:
            tmp.unlink(missing_ok=True)
    click.echo(f"Wrote {out}: {data['candidate']['name']}, {len(data['evidence'])} pieces of evidence, "
               f"{len(data['blobs'])} media files, {len(data['audit'])} audit entries.")


@main.command("verify-pack")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@friendly
def verify_pack(path: Path) -> None:
    """Check a portfolio pack; name every file, hash, signature, decision or audit entry that was changed."""
    from .services import pack

    report = pack.verify(path)
    if not report.ok:
        for problem in report.problems:
            click.echo(f"- {problem}", err=True)
        raise click.ClickException(f"The pack has been changed: {len(report.problems)} problem(s) found.")
    click.echo(f"Pack intact: {report.summary()}")


@main.command("import-pack")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@pass_context
@friendly
def import_pack(ctx: Context, path: Path) -> None:
    """Verify a portfolio pack from another centre, then import its candidate with the same ids and hashes."""
    from .services import pack
    from .storage import storage_from_config

    engine, _ = _prepare(ctx)
    with transaction(engine) as session:
        candidate = pack.import_pack(session, storage_from_config({}, ctx.instance), SYSTEM, path)
        registration = candidate.registration_number
    click.echo(f"Imported {registration}: the pack verified and every record was kept with its ids and hashes.")


@main.group()
def uploads() -> None:
    """Files devices are sending in parts."""


@uploads.command("prune")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 3650),
              help="Discard uploads no part has reached for this many days.")
@pass_context
@friendly
def uploads_prune(ctx: Context, days: int) -> None:
    """Discard unfinished uploads from devices that stopped sending; a device that returns starts them again."""
    from datetime import timedelta

    from sync.centre.media import discard_abandoned

    from . import create_app
    from .models import utcnow

    app = create_app({"DATABASE_URL": ctx.url}, instance=ctx.instance)
    with transaction(app.extensions["engine"]) as session:
        gone = discard_abandoned(session, app.extensions["storage"], utcnow() - timedelta(days=days))
    app.extensions["engine"].dispose()
    spooled = sum(u.received for u in gone) / (1024 * 1024)
    click.echo(f"Discarded {len(gone)} unfinished upload{'' if len(gone) == 1 else 's'} ({spooled:.1f} MB of parts) "
               f"no part had reached for {days} days or more.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@pass_context
@friendly
def serve(ctx: Context, host: str, port: int, threads: int) -> None:
    """Serve the tracker over HTTP with a production WSGI server."""
    import waitress

    from . import create_app

    if (ctx.instance / "device_token").exists():  # a field device: the spec pack comes from the centre
        engine = ctx.engine()
        upgrade(engine)
    else:
        engine, _ = _prepare(ctx)
    engine.dispose()
    app = create_app({"DATABASE_URL": ctx.url}, instance=ctx.instance)
    # What is loaded by now (modules, the app, table metadata) lives as long as the process: set it aside, garbage
    # collected first, so the full passes a big push's rows set off do not walk it again each time.
    gc.collect()
    gc.freeze()
    click.echo(f"Tracker running at http://{host}:{port}/  (press Ctrl+C to stop)")
    sys.stdout.flush()
    waitress.serve(app, host=host, port=port, threads=threads, ident="tracker")



# --- Field devices --------------------------------------------------------------------------------------


@main.group()
def field() -> None:
    """Set this tracker up as an assessor's field device that syncs with the centre."""


@field.command("enrol")
@click.option("--server", required=True, help="The centre's tracker, e.g. https://tracker.example.org")
@click.option("--email", required=True, help="Your sign-in email at the centre.")
@click.option("--name", default="Field device", show_default=True, help="A name for this device.")
@click.password_option("--password", confirmation_prompt=False, prompt="Password at the centre",
                       help="Asked for with a hidden prompt when not given.")
@pass_context
@friendly
def field_enrol(ctx: Context, server: str, email: str, name: str, password: str) -> None:
    """Register this device with the centre, set up its database and download your caseload."""
    from sync.device.field import EnrolFailed, database_engine, enrol

    from .storage import storage_from_config

    ctx.instance.mkdir(parents=True, exist_ok=True)
    ensure_secret_key(ctx.instance)
    engine = database_engine(ctx.url)
    try:
        report = enrol(engine, ctx.instance, server, email, password, name,
                       storage=storage_from_config({}, ctx.instance))
    except EnrolFailed as exc:
        raise click.ClickException(str(exc)) from None
    if report.error:
        raise click.ClickException(f"Enrolled, but the first download failed: {report.error}")
    click.echo(f"Enrolled with {server}: {report.pulled_rows} records and {report.files_downloaded} files "
               "downloaded. Sign in to this device's tracker with the same email and password.")
    if report.files_note:
        click.echo(report.files_note)


@main.command("sync")
@pass_context
@friendly
def sync_command(ctx: Context) -> None:
    """Send this device's changes to the centre and fetch the caseload (exit status 1 if anything is left)."""
    from sqlmodel import Session as _Session

    from sync.device.client import Client, HttpTransport
    from sync.device.field import database_engine, load_token

    from .models import SyncState
    from .storage import storage_from_config

    token = load_token(ctx.instance)
    if token is None:
        raise click.ClickException("This tracker is not a field device yet: run `tracker field enrol` first.")
    engine = database_engine(ctx.url)
    with _Session(engine) as session:
        state = session.get(SyncState, 1)
    client = Client(engine, storage_from_config({}, ctx.instance), HttpTransport(state.server_url), token)
    report = client.sync()
    click.echo(f"Items pushed: {report.pushed}; uploaded bytes: {report.uploaded_bytes}; "
               f"pulled rows: {report.pulled_rows}; files downloaded: {report.files_downloaded}.")
    if report.files_note:
        click.echo(report.files_note)
    if report.sent_again:
        click.echo(f"Sent again: {report.sent_again} item(s) the centre no longer had (it may have been restored "
                   "from a backup).")
    for line in report.lines():
        click.echo(line)
    if report.error:
        click.echo(f"Not finished: {report.error}", err=True)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)
