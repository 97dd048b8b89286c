"""The optional payload codec: AES-256-GCM over every payload the SDK writes (workflow
inputs, results, signals, updates, activity arguments, memos), so the Temporal server and
anyone reading its database see ciphertext. The codec server endpoint (`/codec`) lets
the Temporal UI show them decrypted to operators who hold the codec token."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from journeys.schemas.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class EncryptionCodec(PayloadCodec):
    """Each payload becomes nonce + ciphertext of its serialized form; the key id travels
    in the metadata so a key can be rotated while old histories still decode."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current = current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._current]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(12)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._current.encode()},
                    data=nonce + sealed,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # written before encryption was turned on
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise ValueError(f"payload encrypted with unknown key id {key_id!r}")
            plain = cipher.decrypt(payload.data[:12], payload.data[12:], None)
            decoded.append(Payload.FromString(plain))
        return decoded


def new_key() -> str:
    """A fresh key for `JOURNEYS_PAYLOAD_KEY`."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def codec(settings: Settings) -> EncryptionCodec | None:
    """The codec the settings ask for, or None when payloads stay plain."""
    if settings.payload_key is None:
        return None
    keys = {settings.payload_key_id: _decoded(settings.payload_key.get_secret_value())}
    for kid, key in settings.payload_old_keys.items():
        keys.setdefault(kid, _decoded(key.get_secret_value()))
    return EncryptionCodec(keys, settings.payload_key_id)


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted when a payload key is set: every client, worker and
    replayer of a deployment must use the same one."""
    found = codec(settings)
    if found is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=found)


def _decoded(key: str) -> bytes:
    raw = base64.urlsafe_b64decode(key)
    if len(raw) != 32:
        raise ValueError("a payload key is 32 bytes, base64-encoded (`journeys payload-key`)")
    return raw
