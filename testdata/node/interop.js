'use strict';
// The node side of interop_test.go: the node package shmmap (the original
// this Go package ports) against segments the Go package makes, and the
// other way round. NODE_PATH points at the node_modules install.sh made.
//
//   node interop.js attach KEY N   sum N float64s in KEY, double them
//   node interop.js create N       make a segment, wait, check Go's writes
const shmmap = require('shmmap');

// floats views a Buffer over shared memory as float64s, in place.
const floats = (buf) => new Float64Array(buf.buffer, buf.byteOffset, buf.length / 8);

function attach(key, n) {
  const buf = shmmap.read_write(key, n * 8);
  const a = floats(buf);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i];
  console.log(String(sum));
  for (let i = 0; i < a.length; i++) a[i] *= 2; // the Go process sees it
  shmmap.release(key);
}

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
if (cmd === 'attach') attach(args[0], Number(args[1]));
else if (cmd === 'create') create(Number(args[0]));
else { console.error(`unknown command ${cmd}`); process.exit(2); }
