// MLPipeline (thesis Appendix A.3): preprocess -> 4 LightGBM trainings in parallel -> evaluate.
// `compose DAG.js > DAG.json` (openwhisk-composer 0.12) writes DAG.json beside it.
const composer = require('openwhisk-composer')

module.exports = composer.sequence(
  composer.action('preprocess'),
  composer.parallel(
    composer.action('train1'),
    composer.action('train2'),
    composer.action('train3'),
    composer.action('train4')
  ),
  composer.action('evaluate')
)
