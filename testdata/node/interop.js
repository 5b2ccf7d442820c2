'use strict';
// The node side of interop_test.go, beside the README's worker.js, which the
// test runs as the README gives it: the node package shmmap (the original
// this Go package ports) making a segment for Go. NODE_PATH points at the
// node_modules that install.sh made.
//
//   node interop.js create N       make a segment, wait, check Go's writes
const shmmap = require('shmmap');

// floats views a Buffer over shared memory as float64s, in place.
const floats = (buf) => new Float64Array(buf.buffer, buf.byteOffset, buf.length / 8);

function create(n) {
  const [key, buf] = shmmap.create(n * 8);
  try {
    const a = floats(buf);
    for (let i = 0; i < n; i++) a[i] = i + 0.5;
    console.log(key);
    // Wait for the end of stdin: the Go process has negated every value.
    process.stdin.resume();
    process.stdin.on('end', () => {
      try {
        for (let i = 0; i < n; i++) {
          if (a[i] !== -(i + 0.5)) {
            console.error(`value ${i} is ${a[i]}, want ${-(i + 0.5)}`);
            process.exitCode = 1;
            break;
          }
        }
      } finally {
        shmmap.release(key); // the creator's release unlinks
      }
    });
  } catch (e) {
    shmmap.release(key);
    throw e;
  }
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'create') create(Number(args[0]));
else { console.error(`unknown command ${cmd}`); process.exit(2); }
