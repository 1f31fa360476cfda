namespace EptFuzz.Contract;

/// <summary>
/// Result of an operation on the hypervisor's EPT API (spec/case-format.md). When several apply,
/// the first in declaration order after <see cref="Ok"/> wins. A failed operation changes nothing.
/// </summary>
public enum ApiResult : byte
{
    Ok,
    Unsupported,
    Unaligned,
    OutOfRange,
    InvalidPermission,
    Duplicated,
    NotExist,
    NotMergeable,
    /// <summary>
    /// Project addition: the operation would need more table pages than the hypervisor's pool
    /// allows. It is an input problem (an absurd case), never an architectural outcome.
    /// </summary>
    ResourceLimit,
}
