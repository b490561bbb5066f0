// Bearer-key checks for the front door (nginx njs; Debian bookworm ships njs 0.7.9).
//
// The secrets come from the environment (nginx `env VLLM_API_KEY;`), never from nginx.conf.
// Each comparison hashes both sides with SHA-256 and compares the 32-byte digests with a
// fixed-length XOR loop, so its time depends neither on the key's length nor on how many
// leading characters an attacker guessed right.
var crypto = require('crypto');

function digest(text) {
    return crypto.createHash('sha256').update(text).digest();
}

function same(a, b) {
    var diff = 0;
    for (var i = 0; i < 32; i++) {
        diff |= a[i] ^ b[i];
    }
    return diff === 0;
}

function bearer(r) {
    var header = r.headersIn['Authorization'] || '';
    return header.substring(0, 7) === 'Bearer ' ? header.substring(7) : null;
}

// True when the request carries `Authorization: Bearer <value of env var name>`.
// An unset or empty secret matches nothing: a missing key closes the door, never opens it.
function carries(r, name) {
    var expected = process.env[name] || '';
    var given = bearer(r);
    if (expected === '' || given === null) {
        return false;
    }
    return same(digest(given), digest(expected));
}

// js_set handlers: '1' lets the request through, '0' answers 401.
function key(r) {
    return carries(r, 'VLLM_API_KEY') ? '1' : '0';
}

function metrics(r) {
    return carries(r, 'VLLM_API_KEY') || carries(r, 'RENTSTACK_METRICS_TOKEN') ? '1' : '0';
}

function health(r) {
    return r.method === 'GET' || carries(r, 'VLLM_API_KEY') ? '1' : '0';
}

export default {key, metrics, health};
