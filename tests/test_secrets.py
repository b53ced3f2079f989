"""API keys never print: not in reprs, f-strings, pickles or log records, and files must be 0600."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from mlalgo.secrets import (
    MASK,
    Credentials,
    RedactingFilter,
    Secret,
    SecretsError,
    install_log_redaction,
    load_credentials,
    redact,
)

KEY = "PKTEST7Q2XYZKEYID"
SECRET = "s3cr3t-VALUE-9f8e7d6c5b4a"


def test_a_secret_never_prints_its_value() -> None:
    s = Secret(SECRET)

    shown = [repr(s), str(s), f"{s}", f"{s!r}", "%s" % s, format(s, ">40")]  # noqa: UP031

    assert all(SECRET not in text for text in shown)
    assert s.reveal() == SECRET


def test_a_secret_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(SECRET))


def test_credentials_repr_hides_both_parts() -> None:
    creds = Credentials("alpaca", Secret(KEY), Secret(SECRET))

    assert KEY not in repr(creds) and SECRET not in repr(creds)
    assert repr(creds) == f"Credentials(provider='alpaca', key_id={MASK}, secret={MASK})"


def test_credentials_come_from_the_providers_environment_variables() -> None:
    env = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}

    creds = load_credentials("alpaca", env=env)

    assert (creds.key_id.reveal(), creds.secret.reveal()) == (KEY, SECRET)


def test_missing_credentials_say_which_variables_to_set() -> None:
    with pytest.raises(SecretsError, match="APCA_API_KEY_ID/APCA_API_SECRET_KEY"):
        load_credentials("alpaca", env={})


def write_creds(path: Path, mode: int) -> Path:
    path.write_text(f"alpaca:\n  key_id: {KEY}\n  secret: {SECRET}\n")
    path.chmod(mode)
    return path


def test_a_private_file_is_read(tmp_path: Path) -> None:
    path = write_creds(tmp_path / "keys.yaml", 0o600)

    creds = load_credentials("alpaca", file=path, env={})

    assert creds.secret.reveal() == SECRET


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = write_creds(tmp_path / "keys.yaml", mode)

    with pytest.raises(SecretsError) as err:
        load_credentials("alpaca", file=path)

    assert f"chmod 600 {path}" in str(err.value)
    assert SECRET not in str(err.value)


def test_file_problems_are_named_without_quoting_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"alpaca: [{SECRET}\n")
    bad.chmod(0o600)
    with pytest.raises(SecretsError, match="not valid YAML") as err:
        load_credentials("alpaca", file=bad)
    assert SECRET not in str(err.value)

    other = write_creds(tmp_path / "other.yaml", 0o600)
    with pytest.raises(SecretsError, match=r"expected `binance: \{key_id"):
        load_credentials("binance", file=other)
    with pytest.raises(SecretsError, match="no such credentials file"):
        load_credentials("alpaca", file=tmp_path / "absent.yaml")


def test_log_records_are_redacted_in_message_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Secret(SECRET)
    logger = logging.getLogger("mlalgo.test.secrets")
    caplog.handler.addFilter(RedactingFilter())

    logger.warning("header was %s", SECRET)
    logger.warning(f"inline {SECRET}")
    try:
        raise RuntimeError(f"request failed with key {SECRET}")
    except RuntimeError:
        logger.exception("fetch failed")

    assert SECRET not in caplog.text
    assert caplog.text.count(MASK) >= 3


def test_install_log_redaction_covers_every_root_handler(tmp_path: Path) -> None:
    Secret(SECRET)
    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "log.txt")
    root.addHandler(handler)
    try:
        install_log_redaction()
        logging.getLogger("mlalgo.test").error("secret=%s", SECRET)
    finally:
        root.removeHandler(handler)
        handler.close()

    text = (tmp_path / "log.txt").read_text()
    assert SECRET not in text and f"secret={MASK}" in text


def test_redact_replaces_every_known_value() -> None:
    Secret(SECRET)
    Secret(KEY)

    assert redact(f"a {KEY} b {SECRET} c") == f"a {MASK} b {MASK} c"
