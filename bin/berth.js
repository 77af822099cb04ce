#!/usr/bin/env node
import { main } from '../dist/cli/main.js';
import { filterProcessWarnings } from '../dist/cli/warnings.js';

filterProcessWarnings();
process.exitCode = await main(process.argv.slice(2));
