import { defineConfig } from 'vite';

// Relative asset paths, so the page works wherever surveybus-web serves web/dist from.
export default defineConfig({
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 600 },
});
