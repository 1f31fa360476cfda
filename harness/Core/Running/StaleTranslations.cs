using EptFuzz.Contract;

namespace EptFuzz.Harness.Running;

/// <summary>
/// The stale-translation policy. A processor may keep using translations it cached before a raw
/// write changed an entry, until an INVEPT that covers them; an access whose walk touches such an
/// entry is "stale-allowed": its answers are not compared. Once stale answers left translators
/// with different A/D state, nothing later is compared (A/D flags are sticky).
/// </summary>
internal sealed class StaleTranslations(HashSet<ulong> entries, HashSet<ulong> rootsSinceGlobalInvept)
{
    /// <summary>True once a stale-allowed access left translators with different A/D state.</summary>
    public bool Desynchronized { get; set; }

    /// <summary>Entries a raw write changed since the last INVEPT that covered them.</summary>
    public bool Any => entries.Count > 0;

    /// <summary>A new EPTP root is current: single-context INVEPTs from now on cover only it.</summary>
    public void OnRoot(ulong root) => rootsSinceGlobalInvept.Add(root);

    public void OnInvept(InveptType type, ulong currentRoot)
    {
        // Single-context INVEPT only drops translations tagged with the current EPTP's root; ones
        // cached under another root survive, so stale entries stay stale unless this case has used
        // one root since the last global INVEPT.
        if (type == InveptType.Global || rootsSinceGlobalInvept.Count <= 1)
        {
            entries.Clear();
        }

        if (type == InveptType.Global)
        {
            rootsSinceGlobalInvept.Clear();
            rootsSinceGlobalInvept.Add(currentRoot);
        }
    }

    /// <summary>A raw write replaced <paramref name="old"/> at <paramref name="address"/>.</summary>
    public void OnRawWrite(ulong address, ulong old, ulong value)
    {
        // Nothing is cached from an all-zero (not-present) entry, so overwriting one cannot leave
        // a stale translation behind.
        if (old != 0 && old != value)
        {
            entries.Add(address);
        }
    }

    /// <summary>Does the access these observations answer walk through an entry that may be cached stale?</summary>
    public bool Touches(Observation?[] observations, IReadOnlyList<ITarget> targets)
    {
        // Judge by the walk of a target that does not cache translations: it read what is there now.
        for (int t = 0; t < observations.Length; t++)
        {
            if (observations[t] is { } o && !targets[t].Traits.HasFlag(TargetTraits.CachesTranslations) && targets[t].Traits.HasFlag(TargetTraits.Walk))
            {
                foreach (var e in o.Walk)
                {
                    if (entries.Contains(e.Address.Value))
                    {
                        return true;
                    }
                }

                return false;
            }
        }

        // Nobody can say which entries the access uses: be safe and do not compare.
        return true;
    }
}
