// Path parameters shared by the routes: a model id (up to 256 characters; which ones are valid is the
// registry's to say), and the ids Inferno generates for batches, files and webhooks (up to 64).
import { z } from "zod";

export const modelIdParams = z.object({ id: z.string().min(1).max(256) });
export const resourceIdParams = z.object({ id: z.string().min(1).max(64) });
