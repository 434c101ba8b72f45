// placeholder: filled in step 3
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
export const blockContractions = (p: KernelProgram): KernelProgram => p;
