'use strict';
// A small `wx` for Node: the storage calls MemFire's SDK uses (on a Map) and `wx.request` over
// Node's http, answering as WeChat does: `{data, statusCode, header, cookies, errMsg}`, `data`
// parsed when dataType is 'json' and the body is JSON, else the body text ('' when empty).

const http = require('node:http');

function createWx() {
    const storage = new Map();
    const requests = [];
    return {
        storage,
        requests,
        getStorageSync(key) {
            return storage.has(key) ? storage.get(key) : '';
        },
        setStorageSync(key, value) {
            storage.set(key, value);
        },
        removeStorageSync(key) {
            storage.delete(key);
        },
        request({ url, data, header, method = 'GET', dataType = 'json', success, fail, complete }) {
            method = method.toUpperCase();
            header = { ...(header || {}) };
            let body;
            if (data !== undefined && data !== null) {
                if (method === 'GET') {
                    if (typeof data === 'object') {
                        const qs = new URLSearchParams(data).toString();
                        if (qs) url += (url.includes('?') ? '&' : '?') + qs;
                    }
                } else if (typeof data === 'string') {
                    body = data;
                } else {
                    body = JSON.stringify(data);
                }
            }
            if (body !== undefined && !Object.keys(header).some((k) => k.toLowerCase() === 'content-type')) {
                header['content-type'] = 'application/json';
            }
            requests.push({ url, method });
            const req = http.request(url, { method, headers: header }, (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('end', () => {
                    const text = Buffer.concat(chunks).toString('utf8');
                    let parsed = text;
                    if (dataType === 'json' && text !== '') {
                        try { parsed = JSON.parse(text); } catch { parsed = text; }
                    }
                    const result = {
                        data: parsed,
                        statusCode: res.statusCode,
                        header: { ...res.headers },
                        cookies: [],
                        errMsg: 'request:ok',
                    };
                    if (success) success(result);
                    if (complete) complete(result);
                });
            });
            req.on('error', (e) => {
                const error = { errMsg: `request:fail ${e.message}` };
                if (fail) fail(error);
                if (complete) complete(error);
            });
            if (body !== undefined) req.write(body);
            req.end();
            return { abort: () => req.destroy() };
        },
    };
}

// Installs a fresh global `wx` (one per test file; each file runs in its own process).
function installWx() {
    globalThis.wx = createWx();
    return globalThis.wx;
}

module.exports = { createWx, installWx };
