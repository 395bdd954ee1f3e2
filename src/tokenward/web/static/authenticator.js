// tokenward browser authenticator (docs/ui.md, docs/protocol.md §3–4).
//
// The X25519 key is made by WebCrypto as non-extractable and kept in IndexedDB (a CryptoKey is
// stored as is: the page can use it, nobody can read it out). Captchas for this key are sealed with
// HPKE base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (RFC 9180), and opened
// here from WebCrypto primitives only: X25519 deriveBits, HMAC-SHA256 for LabeledExtract and
// LabeledExpand, AES-GCM decrypt. No cipher is written by hand; this file is the key schedule.
"use strict";

const DB_NAME = "tokenward-authenticator";
const STORE = "keys";
const KEY_ID = "default";
const text = new TextEncoder();

// -- storage ----------------------------------------------------------------------------------

function withStore(mode, action) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => { db.close(); resolve(request.result); };
      tx.onerror = () => { db.close(); reject(tx.error); };
    };
  });
}

export const loadKey = () => withStore("readonly", (s) => s.get(KEY_ID));

export async function createKey() {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const record = { privateKey: pair.privateKey, publicKey: b64uEncode(publicRaw), created: Date.now() };
  await withStore("readwrite", (s) => s.put(record, KEY_ID));
  return record;
}

// -- encoding ---------------------------------------------------------------------------------

export function b64uEncode(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64uDecode(value) {
  if (!/^[A-Za-z0-9_-]*$/.test(value)) throw new Error("not base64url");
  const b64 = value.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((value.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const i2osp2 = (n) => new Uint8Array([n >> 8, n & 0xff]);

// -- RFC 9180 ---------------------------------------------------------------------------------

const KEM_SUITE = concat(text.encode("KEM"), i2osp2(0x0020)); // DHKEM(X25519, HKDF-SHA256)
const HPKE_SUITE = concat(text.encode("HPKE"), i2osp2(0x0020), i2osp2(0x0001), i2osp2(0x0002)); // + AES-256-GCM
const HPKE_V1 = text.encode("HPKE-v1");

async function hmacSha256(key, data) {
  // RFC 5869 Extract with an empty salt uses HashLen zero bytes; RFC 2104 pads any short key the
  // same way, and WebCrypto refuses empty HMAC keys.
  const raw = key.length ? key : new Uint8Array(32);
  const k = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

async function expand(prk, info, length) {
  let out = new Uint8Array(0);
  let block = new Uint8Array(0);
  for (let counter = 1; out.length < length; counter++) {
    block = await hmacSha256(prk, concat(block, info, new Uint8Array([counter])));
    out = concat(out, block);
  }
  return out.slice(0, length);
}

const labeledExtract = (suite, salt, label, ikm) => hmacSha256(salt, concat(HPKE_V1, suite, text.encode(label), ikm));

const labeledExpand = (suite, prk, label, info, length) =>
  expand(prk, concat(i2osp2(length), HPKE_V1, suite, text.encode(label), info), length);

/** HPKE base mode SetupBaseR + single-shot Open (sequence 0, empty AAD). */
export async function hpkeOpen(sealed, privateKey, publicRaw, info) {
  const enc = sealed.slice(0, 32);
  const ciphertext = sealed.slice(32);
  const pkE = await crypto.subtle.importKey("raw", enc, { name: "X25519" }, false, []);
  const dh = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: pkE }, privateKey, 256));
  const eaePrk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "eae_prk", dh);
  const sharedSecret = await labeledExpand(KEM_SUITE, eaePrk, "shared_secret", concat(enc, publicRaw), 32);
  const context = concat(
    new Uint8Array([0]), // mode_base
    await labeledExtract(HPKE_SUITE, new Uint8Array(0), "psk_id_hash", new Uint8Array(0)),
    await labeledExtract(HPKE_SUITE, new Uint8Array(0), "info_hash", info),
  );
  const secret = await labeledExtract(HPKE_SUITE, sharedSecret, "secret", new Uint8Array(0));
  const key = await labeledExpand(HPKE_SUITE, secret, "key", context, 32);
  const nonce = await labeledExpand(HPKE_SUITE, secret, "base_nonce", context, 12);
  const aes = await crypto.subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["decrypt"]);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, tagLength: 128 }, aes, ciphertext));
}

// -- captchas ---------------------------------------------------------------------------------

export class CaptchaError extends Error {}

/** Open a ``TWC2.aes256gcm.<id>.<data>`` captcha; resolves to its plaintext object (cid, code, srv, sub, app, org, exp). */
export async function openCaptcha(payload, privateKey, publicRaw) {
  const parts = payload.trim().split(".");
  if (parts[0] === "TWC1") {
    throw new CaptchaError(
      "This captcha is sealed with ChaCha20-Poly1305 for a CLI authenticator, which a browser cannot open. " +
        "Enrol this browser's key for the address first.",
    );
  }
  if (parts.length !== 4 || parts[0] !== "TWC2" || !/^[A-Za-z0-9_-]{22}$/.test(parts[2])) {
    throw new CaptchaError("This is not a tokenward captcha (it starts with TWC2.aes256gcm.).");
  }
  if (parts[1] !== "aes256gcm") throw new CaptchaError(`This browser cannot open ${parts[1]} captchas.`);
  let plain;
  try {
    const info = text.encode(`tokenward/v1/captcha|${parts[2]}`);
    plain = JSON.parse(new TextDecoder().decode(await hpkeOpen(b64uDecode(parts[3]), privateKey, publicRaw, info)));
  } catch {
    throw new CaptchaError("This captcha was not encrypted to this browser's key (or it was cut short).");
  }
  if (plain.cid !== parts[2]) throw new CaptchaError("The captcha id does not match its contents.");
  return plain;
}

// -- page -------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function showKey(record) {
  const shown = $("public_key_shown");
  if (!shown) return;
  shown.value = record ? record.publicKey : "";
  $("enrol_public_key").value = record ? record.publicKey : "";
  $("enrol-button").disabled = !record;
  $("create-key").textContent = record ? "Replace the key in this browser" : "Create a key in this browser";
  $("key-status").textContent = record
    ? `This browser holds a key, made ${new Date(record.created).toLocaleString()}.`
    : "This browser has no key yet.";
}

function showError(message) {
  $("result").hidden = true;
  $("read-error").textContent = message;
  $("read-error").hidden = false;
}

async function read(event) {
  event.preventDefault();
  $("read-error").hidden = true;
  const record = await loadKey();
  if (!record) return showError("Create and enrol a key first.");
  let plain;
  try {
    plain = await openCaptcha($("captcha").value, record.privateKey, b64uDecode(record.publicKey));
  } catch (error) {
    return showError(error instanceof CaptchaError ? error.message : `Could not read the captcha: ${error}`);
  }
  $("captcha-code").textContent = plain.code;
  $("captcha-origin").textContent = plain.org;
  $("captcha-app").textContent = plain.app;
  $("captcha-account").textContent = plain.sub;
  $("captcha-server").textContent = plain.srv;
  const expired = plain.exp * 1000 < Date.now();
  $("captcha-expires").textContent = new Date(plain.exp * 1000).toLocaleTimeString() + (expired ? " (expired)" : "");
  $("result").hidden = false;
}

async function start() {
  if (!$("read-form")) return;
  if (!window.isSecureContext || !crypto.subtle) {
    $("key-status").textContent = "This page needs a secure context (HTTPS) for WebCrypto.";
    return;
  }
  $("read-form").addEventListener("submit", read);
  $("create-key").addEventListener("click", async () => {
    try {
      showKey(await createKey());
    } catch (error) {
      $("key-status").textContent = `This browser cannot make an X25519 key (${error}).`;
    }
  });
  try {
    showKey(await loadKey());
  } catch (error) {
    $("key-status").textContent = `This browser's storage is not available (${error}).`;
  }
}

start();
