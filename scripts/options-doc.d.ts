import type { OptionSpec } from '../src/config.js';

export const COMMANDS: readonly [string, readonly OptionSpec[]][];
export function flagOf(spec: OptionSpec): string;
export function defaultOf(spec: OptionSpec): string;
export function renderOptionsDoc(): string;
