#!/usr/bin/env node
// Compile the settlement contracts with the pinned solc-js (standard JSON, evmVersion prague) and write
// the ABI and bytecode artifacts the Python bridge loads: connector/contracts/<Name>.json for
// contracts/Settlement.sol (per-meter mode) and contracts/PortfolioSettlement.sol (portfolio mode).
//
//   node contracts/compile.js                          write every artifact
//   node contracts/compile.js --out F                  write Settlement's artifact to F instead
//   node contracts/compile.js --contract NAME --out F  write NAME's artifact to F (the staleness tests
//                                                      compare it with the committed one)
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const CONTRACTS = ["Settlement", "PortfolioSettlement"];
const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  evmVersion: "prague",
  viaIR: true,
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"] } },
};

// Imports resolve inside contracts/ (both contracts import SettlementBase.sol); each file read is hashed.
function reader(hashes) {
  return (name) => {
    const content = fs.readFileSync(path.join(ROOT, "contracts", name), "utf8");
    hashes[name] = crypto.createHash("sha256").update(content).digest("hex");
    return { contents: content };
  };
}

function compile(name, out) {
  const file = name + ".sol";
  const source = fs.readFileSync(path.join(ROOT, "contracts", file), "utf8");
  const imported = {};
  const input = { language: "Solidity", sources: { [file]: { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: reader(imported) }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) process.exit(1);
  const c = output.contracts[file][name];
  const artifact = {
    contractName: name,
    compiler: "solc-js " + solc.version(),
    settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, viaIR: SETTINGS.viaIR, metadata: SETTINGS.metadata },
    sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
    importSha256: imported,
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    storageLayout: c.storageLayout.storage.map((s) => ({ label: s.label, slot: s.slot, offset: s.offset })),
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(artifact, null, 2) + "\n");
  process.stdout.write(`wrote ${path.relative(ROOT, out)} (${(c.evm.deployedBytecode.object.length / 2) | 0} bytes runtime)\n`);
}

function main(argv) {
  const option = (flag) => (argv.indexOf(flag) >= 0 ? argv[argv.indexOf(flag) + 1] : undefined);
  const out = option("--out");
  const only = option("--contract") || (out ? "Settlement" : undefined);
  if (only && !CONTRACTS.includes(only)) throw new Error(`unknown contract ${only}; one of ${CONTRACTS}`);
  for (const name of only ? [only] : CONTRACTS) {
    compile(name, out ? path.resolve(out) : path.join(ROOT, "connector", "contracts", name + ".json"));
  }
}

main(process.argv.slice(2));
