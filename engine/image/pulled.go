package image

import "time"

// markPulled records the time of a pull in the image's record: pull
// policies such as daily go by it (docker's LastTagTime).
func (s *Store) markPulled(id string) (*Image, error) {
	var out *Image
	err := s.updateRefs(func(refs map[string]string) error {
		rec, err := s.readRecord(id)
		if err != nil {
			return err
		}
		rec.Pulled = time.Now().UTC()
		if err := s.writeRecord(rec); err != nil {
			return err
		}
		rec.RepoTags = tagsOf(refs, id)
		out = rec
		return nil
	})
	return out, err
}

// LastPulled is when the image was last pulled: its last pull, else when
// it was stored.
func (img *Image) LastPulled() time.Time {
	if !img.Pulled.IsZero() {
		return img.Pulled
	}
	return img.Stored
}
