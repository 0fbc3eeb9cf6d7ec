#!/usr/bin/env node
// Validate Grafana dashboard JSON against Grafana's own schema, as published in @grafana/schema.
//
// @grafana/schema carries the dashboard model (Dashboard, Panel, RowPanel, VariableModel...) and every
// core panel plugin's options (TimeSeries, Stat, StateTimeline, Table, BarGauge...) as TypeScript types
// generated from Grafana's CUE kinds. This script turns the JSON into a TypeScript module in which every
// piece is an object literal checked with `satisfies` against the matching type, and runs the TypeScript
// compiler on it. Object literals get excess-property checks, so a misspelt key, a wrong value type, an
// unknown enum value or a missing required field is an error; so is a panel type this script does not know.
//
// Two adaptations, both on the types rather than the data:
//  - Grafana's string enums (e.g. LegendDisplayMode) are TypeScript `enum`s, to which a JSON string is
//    never assignable; `Lit<T>` replaces each by the union of its values ("list" | "table" | ...).
//  - Panel options and custom field config are checked with every key optional (`Loose<T>`), because
//    Grafana fills unset options from the plugin defaults when it loads a dashboard.
// Prometheus targets are checked against `PromQuery` below, a copy of the Prometheus data source's query
// model (Grafana's prometheus dataquery kind), which @grafana/schema does not export.
//
// Usage: node check-dashboard.mjs DASHBOARD.json [MORE.json ...]   (exit 0 all valid, 1 any invalid, 2 usage/setup)

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

let ts;
try {
  ts = (await import("typescript")).default;
} catch {
  console.error(`typescript is not installed: run 'npm ci --prefix ${here}' (or .ci/install-observability-tools.sh)`);
  process.exit(2);
}
if (!fs.existsSync(path.join(here, "node_modules", "@grafana", "schema", "package.json"))) {
  console.error(`@grafana/schema is not installed: run 'npm ci --prefix ${here}'`);
  process.exit(2);
}

// Panel type -> module name inside @grafana/schema (its exports map).
const PANEL_MODULES = {
  barchart: "barchart/panelcfg/x/BarChartPanelCfg_types.gen",
  bargauge: "bargauge/panelcfg/x/BarGaugePanelCfg_types.gen",
  gauge: "gauge/panelcfg/x/GaugePanelCfg_types.gen",
  heatmap: "heatmap/panelcfg/x/HeatmapPanelCfg_types.gen",
  histogram: "histogram/panelcfg/x/HistogramPanelCfg_types.gen",
  piechart: "piechart/panelcfg/x/PieChartPanelCfg_types.gen",
  stat: "stat/panelcfg/x/StatPanelCfg_types.gen",
  statetimeline: "statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen",
  statushistory: "statushistory/panelcfg/x/StatusHistoryPanelCfg_types.gen",
  table: "table/panelcfg/x/TablePanelCfg_types.gen",
  text: "text/panelcfg/x/TextPanelCfg_types.gen",
  timeseries: "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
};

const PRELUDE = `
import type * as S from "@grafana/schema";

type Lit<T> = T extends string ? \`\${T}\` : T;
type Strict<T> = T extends string
  ? \`\${T}\`
  : T extends readonly (infer U)[]
    ? Array<Strict<U>>
    : T extends object
      ? { [K in keyof T]: Strict<T[K]> }
      : T;
type Loose<T> = T extends string
  ? \`\${T}\`
  : T extends readonly (infer U)[]
    ? Array<Loose<U>>
    : T extends object
      ? { [K in keyof T]?: Loose<T[K]> }
      : T;

/** The Prometheus data source's query model (Grafana's prometheus dataquery kind). */
interface PromQuery {
  refId: string;
  expr: string;
  datasource?: S.DataSourceRef;
  hide?: boolean;
  queryType?: string;
  editorMode?: "code" | "builder";
  format?: "time_series" | "table" | "heatmap";
  instant?: boolean;
  range?: boolean;
  exemplar?: boolean;
  legendFormat?: string;
  interval?: string;
  intervalFactor?: number;
}
`;

function main(argv) {
  if (argv.length === 0) {
    console.error("usage: node check-dashboard.mjs DASHBOARD.json [MORE.json ...]");
    return 2;
  }
  const buildDir = path.join(here, ".build");
  fs.rmSync(buildDir, { recursive: true, force: true });
  fs.mkdirSync(buildDir, { recursive: true });
  // One TypeScript module per dashboard, all compiled by one program (the schema types load once).
  const inputs = [];
  let failed = 0;
  argv.forEach((input, i) => {
    let dashboard;
    try {
      dashboard = JSON.parse(fs.readFileSync(input, "utf8"));
    } catch (err) {
      console.error(`${input}: not readable JSON: ${err.message}`);
      failed += 1;
      return;
    }
    const { source, sections } = generate(dashboard);
    const file = path.join(buildDir, `dashboard${i}.check.ts`);
    fs.writeFileSync(file, source);
    inputs.push({ input, file, sections });
  });

  const program = ts.createProgram(inputs.map((x) => x.file), {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    skipLibCheck: true,
    types: [],
  });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const general = diagnostics.filter((d) => !d.file || !inputs.some((x) => path.resolve(d.file.fileName) === x.file));
  for (const d of general) console.error(ts.flattenDiagnosticMessageText(d.messageText, "\n  "));
  for (const { input, file, sections } of inputs) {
    const mine = diagnostics.filter((d) => d.file && path.resolve(d.file.fileName) === file);
    if (mine.length === 0 && general.length === 0) {
      const panelCount = sections.filter((s) => s.kind === "panel").length;
      console.log(`${input}: valid against @grafana/schema (${panelCount} panels, ${sections.length} checks)`);
      continue;
    }
    failed += 1;
    for (const d of mine) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, "\n  ");
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const section = sections.findLast((s) => s.line <= line + 1);
      const text = d.file.text.split("\n")[line].trim();
      console.error(`${input}: ${section ? section.label : "prelude"}: ${message}\n    at: ${text}`);
    }
    console.error(`${input}: ${mine.length + general.length} schema error(s)`);
  }
  return failed ? 1 : 0;
}

function generate(dashboard) {
  const lines = PRELUDE.split("\n");
  const sections = [];
  const imports = new Map();
  const checks = [];
  const add = (label, expr, type, kind = "part") => checks.push({ label, expr, type, kind });

  add("dashboard", dashboard, "Strict<S.Dashboard>");
  const panels = Array.isArray(dashboard.panels) ? dashboard.panels : [];
  const all = panels.flatMap((p) => (p && p.type === "row" && Array.isArray(p.panels) ? [p, ...p.panels] : [p]));
  for (const panel of all) {
    const label = `panel id=${panel?.id} ${JSON.stringify(panel?.title ?? "")} (${panel?.type})`;
    if (panel?.type === "row") {
      add(label, panel, "Strict<S.RowPanel>", "panel");
      continue;
    }
    add(label, panel, "Strict<S.Panel>", "panel");
    const module = PANEL_MODULES[panel?.type];
    if (!module) {
      add(`${label}: unknown panel type`, `unknown panel type ${panel?.type}`, "never");
      continue;
    }
    const alias = `P_${panel.type}`;
    imports.set(alias, `@grafana/schema/dist/esm/raw/composable/${module}`);
    if (panel.options !== undefined) add(`${label} options`, panel.options, `Loose<${alias}.Options>`);
    const custom = panel.fieldConfig?.defaults?.custom;
    if (custom !== undefined) add(`${label} fieldConfig.defaults.custom`, custom, `Loose<${alias}.FieldConfig>`);
    for (const target of panel.targets ?? []) {
      add(`${label} target ${target?.refId}`, target, "PromQuery");
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    add(`variable ${JSON.stringify(variable?.name)}`, variable, "Strict<S.VariableModel>");
  }

  for (const [alias, spec] of imports) lines.unshift(`import type * as ${alias} from ${JSON.stringify(spec)};`);
  checks.forEach((check, i) => {
    const literal = JSON.stringify(check.expr, null, 2);
    lines.push("", `// ${check.label}`, ...`export const check${i} = ${literal} satisfies ${check.type};`.split("\n"));
    sections.push({ label: check.label, kind: check.kind, line: lines.length - literal.split("\n").length + 1 });
  });
  return { source: lines.join("\n") + "\n", sections };
}

process.exit(main(process.argv.slice(2)));
