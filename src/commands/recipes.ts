import type { GapcamCommand } from './common.js';
import { recipesDir } from '../paths.js';

export const recipesCommand: GapcamCommand = {
  command: 'recipes',
  describe: 'List the recipes in recipes/ (training recipes, and others such as transfer experiments), one line each',
  builder: (y) => y.example('$0 recipes', 'list the recipes').example('$0 train vgg-gap-tiny', 'then train one'),
  handler: async () => {
    const { listRecipes, summarizeRecipe } = await import('../recipes/loader.js');
    const all = listRecipes();
    if (all.length === 0) {
      console.log(`no recipes in ${recipesDir}`);
      return;
    }
    const width = Math.max(...all.map((r) => r.name.length));
    for (const r of all) {
      const text = r.recipe ? summarizeRecipe(r.recipe) : r.error ? `INVALID: ${r.error}` : `[${r.kind}] ${r.description ?? ''}`;
      console.log(`${r.name.padEnd(width)}  ${text.length > 160 ? text.slice(0, 157) + '...' : text}`);
    }
  },
};
