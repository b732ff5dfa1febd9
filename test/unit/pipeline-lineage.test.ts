// Pipeline lineage (src/backfill/lineage.ts) at the size of a fleet: the graph is rebuilt on every
// subscription and every output change, so it must be linear in the edges (it was quadratic: 0.8 s
// at 10,000 consumers, 2.6 s at 20,000, per subscription), and its cycle search must not recurse
// (a pipeline 20,000 consumers deep overflowed the call stack). What it answers is checked
// against the straightforward construction it replaced, kept below as the reference, on random
// graphs with and without cycles.
import { describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import { buildLineage, downstreamOf, type Edge, type LineageGraph } from '../../src/backfill/lineage.js';
import { mulberry32 } from '../setup/random.js';

// -- the reference: the construction before it was made linear (quadratic, recursive) --------

function refNode(kind: 't' | 'c', name: string): string {
  return `${kind}:${name}`;
}

/** A cycle as a path of nodes (first = last), or null. */
function refFindCycle(adj: Map<string, string[]>): string[] | null {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 1);
    stack.push(n);
    for (const m of adj.get(n) ?? []) {
      const s = state.get(m);
      if (s === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (s === undefined) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of [...adj.keys()].sort()) {
    if (state.has(n)) continue;
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

function refDescribeCycle(path: string[]): string {
  return path.map((n) => n.slice(2)).join(' → ');
}

function referenceLineage(inputs: Edge[], outputs: Edge[]): LineageGraph {
  const adj = new Map<string, string[]>();
  const add = (a: string, b: string): void => {
    let l = adj.get(a);
    if (!l) adj.set(a, (l = []));
    if (!l.includes(b)) l.push(b);
    if (!adj.has(b)) adj.set(b, []);
  };
  for (const e of inputs) add(refNode('t', e.table), refNode('c', e.consumer));
  for (const e of outputs) add(refNode('c', e.consumer), refNode('t', e.table));
  const cycle = refFindCycle(adj);
  if (cycle) {
    throw new IpsError('PIPELINE_CYCLE',
      `the lineage would have a cycle: ${refDescribeCycle(cycle)}; a consumer must not read (directly or through other consumers) a table it writes; drop that output or subscription`,
      { details: { cycle: cycle.map((n) => n.slice(2)) } });
  }
  const names = [...new Set([...inputs, ...outputs].map((e) => e.consumer))].sort();
  const consumers = names.map((name) => ({
    name,
    inputs: inputs.filter((e) => e.consumer === name).map((e) => e.table).sort(),
    outputs: outputs.filter((e) => e.consumer === name).map((e) => e.table).sort(),
  }));
  const tables = [...new Set([...inputs, ...outputs].map((e) => e.table))].sort();
  // Kahn's algorithm over consumers: c1 before c2 when c1 writes a table c2 reads.
  const writers = new Map<string, string[]>();
  for (const e of outputs) writers.set(e.table, [...(writers.get(e.table) ?? []), e.consumer]);
  const deps = new Map(consumers.map((c) => [c.name, new Set(c.inputs.flatMap((t) => writers.get(t) ?? []))] as const));
  const order: string[] = [];
  const done = new Set<string>();
  while (order.length < consumers.length) {
    const ready = consumers.filter((c) => !done.has(c.name) && [...deps.get(c.name)!].every((d) => done.has(d))).map((c) => c.name);
    if (ready.length === 0) break; // cannot happen: acyclic
    for (const r of ready) {
      order.push(r);
      done.add(r);
    }
  }
  return { tables, consumers, order };
}


/** The reference's downstreamOf, as it was. */
function referenceDownstream(g: LineageGraph, consumer: string): { consumer: string; table: string; depth: number }[] {
  const byName = new Map(g.consumers.map((c) => [c.name, c] as const));
  const depth = new Map<string, { table: string; depth: number }>();
  let frontier = [consumer];
  for (let d = 1; frontier.length > 0; d++) {
    const next: string[] = [];
    for (const c of frontier) {
      for (const t of byName.get(c)?.outputs ?? []) {
        for (const r of g.consumers.filter((x) => x.inputs.includes(t))) {
          if (r.name === consumer || depth.has(r.name)) continue;
          depth.set(r.name, { table: t, depth: d });
          next.push(r.name);
        }
      }
    }
    frontier = next;
  }
  return g.order.filter((c) => depth.has(c)).map((c) => ({ consumer: c, ...depth.get(c)! }));
}

// -- the comparison -------------------------------------------------------------------------

type Outcome = { graph: LineageGraph } | { code: string; message: string; details: unknown };

function outcome(build: () => LineageGraph): Outcome {
  try {
    return { graph: build() };
  } catch (e) {
    if (!(e instanceof IpsError)) throw e;
    return { code: e.code, message: e.message, details: e.details };
  }
}

/**
 * A random pipeline fleet: consumers reading source tables and each other's outputs. Acyclic
 * when consumers only read outputs of consumers with a smaller rank; `back` edges may close loops.
 */
function randomFleet(seed: number, consumers: number, back: number): { inputs: Edge[]; outputs: Edge[] } {
  const rnd = mulberry32(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const inputs: Edge[] = [];
  const outputs: Edge[] = [];
  // Names shuffled against ranks, so that name order and dependency order differ.
  const names = Array.from({ length: consumers }, (_, i) => `c${String((i * 7919) % consumers).padStart(4, '0')}`);
  for (let i = 0; i < consumers; i++) {
    if (rnd() < 0.6) outputs.push({ consumer: names[i]!, table: `out-${i}` });
    if (rnd() < 0.2) outputs.push({ consumer: names[i]!, table: `shared-${pick(5)}` }); // several writers of one table
    const reads = 1 + pick(3);
    for (let k = 0; k < reads; k++) {
      const j = pick(Math.max(1, i));
      inputs.push(j < i && rnd() < 0.7 ? { consumer: names[i]!, table: `out-${j}` } : { consumer: names[i]!, table: `src-${pick(20)}` });
    }
  }
  for (let k = 0; k < back; k++) {
    const i = pick(consumers);
    inputs.push({ consumer: names[i]!, table: `out-${i + pick(consumers - i)}` });
  }
  // Subscriptions are unique per (consumer, table), as the state keeps them.
  const unique = (es: Edge[]) => [...new Map(es.map((e) => [`${e.consumer}\u0000${e.table}`, e])).values()];
  return { inputs: unique(inputs), outputs: unique(outputs) };
}

describe('pipeline lineage', () => {
  it('answers as the reference construction on random fleets: tables, consumers, dependency order, downstream sets, and the same cycle', () => {
    let cycles = 0;
    let graphs = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const { inputs, outputs } = randomFleet(seed, 5 + (seed % 60), seed % 3 === 0 ? 1 + (seed % 4) : 0);
      const want = outcome(() => referenceLineage(inputs, outputs));
      const got = outcome(() => buildLineage(inputs, outputs));
      expect(got, `seed ${seed}`).toEqual(want);
      if ('graph' in want && 'graph' in got) {
        graphs++;
        for (const c of want.graph.consumers) expect(downstreamOf(got.graph, c.name), `seed ${seed}, ${c.name}`).toEqual(referenceDownstream(want.graph, c.name));
      } else {
        cycles++;
      }
    }
    // Both kinds were exercised.
    expect(graphs).toBeGreaterThan(100);
    expect(cycles).toBeGreaterThan(20);
  });

  it('a pipeline 20,000 consumers deep: ordered end to end, and a loop closed at its end is found, without overflowing the stack', () => {
    const n = 20_000;
    const name = (i: number) => `c${String(i).padStart(5, '0')}`;
    const inputs: Edge[] = [{ consumer: name(0), table: 'src' }];
    const outputs: Edge[] = [];
    for (let i = 0; i < n; i++) {
      outputs.push({ consumer: name(i), table: `t${i}` });
      if (i > 0) inputs.push({ consumer: name(i), table: `t${i - 1}` });
    }
    const g = buildLineage(inputs, outputs);
    expect(g.order).toEqual(Array.from({ length: n }, (_, i) => name(i)));
    expect(downstreamOf(g, name(n - 3)).map((d) => [d.consumer, d.depth])).toEqual([[name(n - 2), 1], [name(n - 1), 2]]);
    const loop = outcome(() => buildLineage([...inputs, { consumer: name(0), table: `t${n - 1}` }], outputs));
    expect(loop).toMatchObject({ code: 'PIPELINE_CYCLE' });
    expect((loop as { details: { cycle: string[] } }).details.cycle).toHaveLength(2 * n + 1);
  });

  it('a fleet of 20,000 consumers with 2,000 two-stage pipelines is built (linear: the quadratic construction took seconds)', () => {
    const inputs: Edge[] = [];
    const outputs: Edge[] = [];
    for (let i = 0; i < 20_000; i++) inputs.push({ consumer: `c${i}`, table: `t${i % 1000}` });
    for (let i = 0; i < 2000; i++) {
      outputs.push({ consumer: `c${i}`, table: `out${i}` });
      inputs.push({ consumer: `d${i}`, table: `out${i}` });
    }
    const g = buildLineage(inputs, outputs);
    expect(g.consumers).toHaveLength(22_000);
    // Every second-stage consumer after the one whose output it reads.
    const at = new Map(g.order.map((c, i) => [c, i]));
    for (let i = 0; i < 2000; i++) expect(at.get(`d${i}`)!).toBeGreaterThan(at.get(`c${i}`)!);
  });
});
