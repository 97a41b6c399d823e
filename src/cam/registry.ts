// The CAM method table: a new method is one file in src/cam/methods plus one line here.
import type { CamMethod, CamMethodClass, CamTarget, MethodOptions } from './methods/base.js';
import { Cam } from './methods/cam.js';
import { GradCam } from './methods/gradcam.js';
import { GradCamPlusPlus } from './methods/gradcampp.js';
import { XGradCam } from './methods/xgradcam.js';
import { LayerCam } from './methods/layercam.js';
import { ScoreCam } from './methods/scorecam.js';
import { UserError } from '../errors.js';
import { didYouMean } from '../util/did-you-mean.js';

export const METHOD_NAMES = ['cam', 'gradcam', 'gradcam++', 'xgradcam', 'layercam', 'scorecam'] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

export const camMethods: Record<MethodName, CamMethodClass> = {
  cam: Cam,
  gradcam: GradCam,
  'gradcam++': GradCamPlusPlus,
  xgradcam: XGradCam,
  layercam: LayerCam,
  scorecam: ScoreCam,
};

export function isMethodName(name: string): name is MethodName {
  return (METHOD_NAMES as readonly string[]).includes(name);
}

/** Builds a method by its CLI name; a UserError naming the choices otherwise. */
export function createCamMethod(name: string, target: CamTarget, options: MethodOptions = {}): CamMethod {
  if (!isMethodName(name)) throw new UserError(`--method: expected one of ${METHOD_NAMES.join(', ')}; got '${name}'${didYouMean(name, METHOD_NAMES)}`);
  return new camMethods[name](target, options);
}
