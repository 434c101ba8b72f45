// Finds every public function of `kiln` that takes an options object, by reading the types:
// the exports of dsl/index.ts (namespaces k.nn, k.nn.functional, k.optim, … recursively),
// the methods of exported classes and interfaces (Tensor, Module, Executable) and class
// constructors. A parameter is an options object when its type (or a member of its union)
// is a plain object type whose properties are all optional.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { Node, Project, ts, type Signature, type Type } from "ts-morph";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Object types that are values, not options, even when every field is optional. */
const notOptions = new Set(["Tensor", "Module", "Parameter", "Optimizer", "Program", "InputSpec"]);

function isOptionsType(t: Type): boolean {
  if (t.isUnion()) return t.getUnionTypes().some(isOptionsType);
  if (t.isIntersection())
    return (
      t.getIntersectionTypes().every((m) => m.isObject() && m.getCallSignatures().length === 0) &&
      t.getProperties().length > 0 &&
      t.getProperties().every((p) => p.isOptional())
    );
  if (!t.isObject() || t.isArray() || t.isTuple() || t.getCallSignatures().length > 0) return false;
  const name = t.getSymbol()?.getName() ?? t.getAliasSymbol()?.getName();
  if (name && notOptions.has(name)) return false;
  const props = t.getProperties();
  return props.length > 0 && props.every((p) => p.isOptional());
}

function takesOptions(sig: Signature, at: Node): boolean {
  return sig.getParameters().some((p) => isOptionsType(p.getTypeAtLocation(at)));
}

export function publicOptionsFunctions(): string[] {
  // No @types/node and a small lib: the public surface never mentions node's types, and loading
  // them triples the time this takes.
  const project = new Project({
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      allowImportingTsExtensions: true,
      noEmit: true,
      types: [],
      lib: ["lib.es2022.d.ts"],
      skipLibCheck: true,
    },
  });
  const index = project.addSourceFileAtPath(path.join(root, "dsl/index.ts"));
  project.resolveSourceFileDependencies();
  const found = new Set<string>();
  const seenFiles = new Set<string>();

  const visitClassOrInterface = (name: string, decl: Node): void => {
    if (Node.isClassDeclaration(decl)) {
      for (const ctor of decl.getConstructors()) if (ctor.getParameters().some((p) => isOptionsType(p.getType()))) found.add(`new ${name}`);
      for (const m of decl.getInstanceMethods()) {
        if (m.hasModifier("private") || m.hasModifier("protected") || m.getName().startsWith("#")) continue;
        if (m.getParameters().some((p) => isOptionsType(p.getType()))) found.add(`${name}.${m.getName()}`);
      }
    } else if (Node.isInterfaceDeclaration(decl)) {
      for (const p of decl.getType().getProperties()) {
        const t = p.getTypeAtLocation(decl);
        if (t.getCallSignatures().some((s) => takesOptions(s, decl))) found.add(`${name}.${p.getName()}`);
      }
    }
  };

  const visit = (prefix: string, file: Node): void => {
    if (!Node.isSourceFile(file) || seenFiles.has(`${prefix}|${file.getFilePath()}`)) return;
    seenFiles.add(`${prefix}|${file.getFilePath()}`);
    for (const [exportName, decls] of file.getExportedDeclarations()) {
      const name = `${prefix}.${exportName}`;
      for (const decl of decls) {
        if (Node.isSourceFile(decl)) visit(name, decl);
        else if (Node.isClassDeclaration(decl) || Node.isInterfaceDeclaration(decl)) visitClassOrInterface(name, decl);
        else if (Node.isFunctionDeclaration(decl) || Node.isVariableDeclaration(decl)) {
          if (
            decl
              .getType()
              .getCallSignatures()
              .some((s) => takesOptions(s, decl))
          )
            found.add(name);
        }
      }
    }
  };
  visit("k", index);
  return [...found].sort();
}
