#!/usr/bin/env node
// Compile contracts/Settlement.sol with the pinned solc-js (standard JSON, evmVersion prague) and write
// the ABI and bytecode artifact the Python bridge loads: connector/contracts/Settlement.json.
//
//   node contracts/compile.js            write the artifact
//   node contracts/compile.js --out F    write it to F instead (the staleness test compares the two)
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const SOURCE = path.join(ROOT, "contracts", "Settlement.sol");
const DEFAULT_OUT = path.join(ROOT, "connector", "contracts", "Settlement.json");
const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  evmVersion: "prague",
  viaIR: true,
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"] } },
};

function main(argv) {
  const outIndex = argv.indexOf("--out");
  const out = outIndex >= 0 ? path.resolve(argv[outIndex + 1]) : DEFAULT_OUT;
  const source = fs.readFileSync(SOURCE, "utf8");
  const input = { language: "Solidity", sources: { "Settlement.sol": { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) process.exit(1);
  const c = output.contracts["Settlement.sol"].Settlement;
  const artifact = {
    contractName: "Settlement",
    compiler: "solc-js " + solc.version(),
    settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, viaIR: SETTINGS.viaIR, metadata: SETTINGS.metadata },
    sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    storageLayout: c.storageLayout.storage.map((s) => ({ label: s.label, slot: s.slot, offset: s.offset })),
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(artifact, null, 2) + "\n");
  process.stdout.write(`wrote ${path.relative(ROOT, out)} (${(c.evm.deployedBytecode.object.length / 2) | 0} bytes runtime)\n`);
}

main(process.argv.slice(2));
