// Telling a registered backbone name from a model of the user's own, by syntax alone (no imports: recipes are
// checked with it before the engine starts).

/** Extensions of the model files a backbone may be: Keras (.h5, .hdf5, .keras) and tfjs (model.json). */
export const MODEL_FILE_EXTENSIONS = ['.h5', '.hdf5', '.keras', '.json'] as const;

export function isHttpUrl(ref: string): boolean {
  return /^https?:\/\//i.test(ref);
}

/** A model file, folder or URL rather than a registered backbone name: an http(s) URL, a path with a separator, or a
 *  name ending in .h5/.hdf5/.keras/.json (registered names are plain identifiers such as vgg16). */
export function isModelFileRef(ref: string): boolean {
  return isHttpUrl(ref) || /[\\/]/.test(ref) || MODEL_FILE_EXTENSIONS.some((e) => ref.toLowerCase().endsWith(e));
}

/** A Keras 3 `.keras` archive (zip of config.json + model.weights.h5), by extension. */
export function isKerasArchivePath(ref: string): boolean {
  return /\.keras$/i.test(ref);
}

/** A Keras HDF5 model or weights file, by extension. */
export function isKerasH5Path(ref: string): boolean {
  return /\.(h5|hdf5)$/i.test(ref);
}
