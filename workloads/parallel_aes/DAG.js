// ParallelAES (thesis Appendix A.2): split -> 3 AES functions in parallel -> merge.
// `compose DAG.js > DAG.json` (openwhisk-composer 0.12) writes DAG.json beside it.
const composer = require('openwhisk-composer')

module.exports = composer.sequence(
  composer.action('split'),
  composer.parallel(
    composer.action('aes1'),
    composer.action('aes2'),
    composer.action('aes3')
  ),
  composer.action('merge')
)
