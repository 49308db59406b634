// VideoAnalytics (thesis Appendix A.1): streaming -> decoder -> 2 recognitions in parallel.
// `compose DAG.js > DAG.json` (openwhisk-composer 0.12) writes DAG.json beside it.
const composer = require('openwhisk-composer')

module.exports = composer.sequence(
  composer.action('streaming'),
  composer.action('decoder'),
  composer.parallel(
    composer.action('recognition1'),
    composer.action('recognition2')
  )
)
