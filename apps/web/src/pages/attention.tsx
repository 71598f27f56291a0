import { get } from '../api';
import type { AttentionIndex, AttentionView, RunArtifacts } from '../api-types';
import { ErrorBox } from '../errors';
import { num } from '../format';
import { useLive, useResource } from '../hooks';
import { runHref } from '../router';

type ExportedImage = AttentionIndex['images'][number];

/**
 * One attention export: per image, the input, the mean map, its 60 %-mass mask and overlay, then
 * every head's heatmap, mask and overlay. The PNGs come from storage through presigned links.
 */
export function AttentionPage(props: { runId: string; exportId: string }) {
  const { runId, exportId } = props;
  const base = `/runs/${encodeURIComponent(runId)}`;
  const view = useResource(
    () => get<AttentionView>(`${base}/attention/${encodeURIComponent(exportId)}`),
    [runId, exportId],
  );
  const artifacts = useResource(() => get<RunArtifacts>(`${base}/artifacts`), [runId, exportId]);
  useLive({
    onHello: () => {
      view.reload();
      artifacts.reload();
    },
    onJob: (event) => {
      if (event.runId === runId && event.name === 'attention' && event.event !== 'progress') {
        view.reload();
        artifacts.reload();
      }
    },
  });
  const urls = new Map(
    (artifacts.data?.attention.find((entry) => entry.exportId === exportId)?.files ?? []).map((file) => [
      file.name,
      file.url,
    ]),
  );
  const index = view.data?.index;
  return (
    <section class="attention">
      <h2>
        <a href={runHref(runId)}>{runId}</a> / attention {exportId}{' '}
        {view.data && <span class={`status ${view.data.status}`}>{view.data.status}</span>}
      </h2>
      <ErrorBox error={view.error ?? artifacts.error} />
      {view.data?.error && <p class="error-text">{view.data.error}</p>}
      {index && (
        <p class="muted">
          teacher at step {index.step}, {index.heads} heads, patch {index.patchSize} px, masks keep{' '}
          {Math.round(index.threshold * 100)} % of the attention mass
        </p>
      )}
      {artifacts.data &&
        index?.images.map((image) => (
          <ImageMaps key={image.name} image={image} urls={urls} threshold={index.threshold} />
        ))}
    </section>
  );
}

function Tile(props: { label: string; src: string | undefined; note?: string }) {
  return (
    <figure class="tile">
      {props.src ? (
        <img src={props.src} alt={props.label} loading="lazy" />
      ) : (
        <div class="missing">missing</div>
      )}
      <figcaption>
        {props.label}
        {props.note && <span class="muted"> {props.note}</span>}
      </figcaption>
    </figure>
  );
}

function ImageMaps(props: {
  image: ExportedImage;
  urls: Map<string, string | undefined>;
  threshold: number;
}) {
  const { image, urls } = props;
  const mass = Math.round(props.threshold * 100);
  const area = (fraction: number) => `area ${num(fraction * 100, 2)} %`;
  return (
    <div class="image-maps" data-image={image.name}>
      <h3>{image.name}</h3>
      <div class="tiles">
        <Tile label="input" src={urls.get(image.files.input)} />
        <Tile label="mean of heads" src={urls.get(image.files.mean)} />
        <Tile
          label={`mean ${mass} % mask`}
          src={urls.get(image.files.meanMask)}
          note={area(image.maskArea.mean)}
        />
        <Tile label="overlay" src={urls.get(image.files.overlay)} />
      </div>
      <div class="tiles heads">
        {image.files.heads.map((file, head) => (
          <div class="head" key={file}>
            <Tile label={`head ${head}`} src={urls.get(file)} />
            <Tile
              label={`${mass} % mask`}
              src={urls.get(image.files.headMasks[head])}
              note={area(image.maskArea.heads[head])}
            />
            <Tile label="overlay" src={urls.get(image.files.headOverlays[head])} />
          </div>
        ))}
      </div>
    </div>
  );
}
